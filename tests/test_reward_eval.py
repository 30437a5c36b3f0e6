"""Reward-model evaluation: calibration, single-feature bias probes, and ensemble uncertainty."""

import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

from rlxf.config import TrainConfig
from rlxf.eval.calibration import expected_calibration_error
from rlxf.eval.probes import probe_pairs, run_probes
from rlxf.models.reward_ensemble import RewardEnsemble
from rlxf.models.tokenizer import build_word_tokenizer, prompt_ids, response_ids
from rlxf.train.loop import Checkpointer
from rlxf.train.reward import train_reward_model
from rlxf.world import all_prompts, build_kb, parse, split_prompts
from rlxf.world.vocab import world_vocabulary

KB = build_kb(10, 10, seed=0)
W = {"helpful": 0.30, "harmless": 0.45, "honest": 0.25}
HELDOUT = split_prompts(all_prompts(KB), 0, 0.25)[1]


def test_ece_hand_computed():
    # Folded confidences: 0.9 (right), 0.9 (wrong: 0.1 for a first that won), 0.6 (right).
    # Bins of width 0.05 from 0.5: 0.9 -> bin 8 with acc 1/2, conf 0.9 -> |0.5-0.9| * 2/3;
    # 0.6 -> bin 2 with acc 1, conf 0.6 -> |1-0.6| * 1/3.  ECE = 0.8/3 + 0.4/3 = 0.4
    assert expected_calibration_error([0.9, 0.1, 0.6], [True, True, True]) == pytest.approx(0.4)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) is None


def test_each_probe_pair_differs_in_exactly_its_feature():
    pairs = probe_pairs(HELDOUT, KB, W, seed=0)
    changed = {"length": {"fillers"}, "flattery": {"opener", "opener_variant"},
               "confidence": {"confident"}, "anthropomorphic": {"anthro"},
               "apology": {"opener"}}
    for name, fields in changed.items():
        assert len(pairs[name]) == len(HELDOUT)
        for _, plain, feature in pairs[name]:
            a, b = parse(plain).to_json(), parse(feature).to_json()
            assert {k for k in a if a[k] != b[k]} <= fields and a != b
    assert all(p.family == "false_premise" and parse(f).act == "agree"
               for p, _, f in pairs["sycophancy"])


def test_probes_report_what_a_length_loving_reward_prefers():
    pairs = probe_pairs(HELDOUT, KB, W, seed=0)

    def words(prompts, texts):  # a reward model that only counts words
        return [float(len(t.split())) for t in texts]
    result = run_probes(pairs, words, KB, W)
    assert result["length"]["rm_prefers_feature"] == 1.0
    assert result["length"]["gold_prefers_feature"] == 0.0  # padding costs helpfulness
    assert result["length"]["gold_gap"] == pytest.approx(-0.3 * 0.10)
    assert result["sycophancy"]["rm_prefers_feature"] == 0.0  # "yes , you are right ." is short
    assert result["sycophancy"]["gold_gap"] < -0.5


def test_ensemble_is_more_uncertain_off_distribution(tmp_path):
    tok = build_word_tokenizer(world_vocabulary())
    rng = random.Random(0)
    prompt = "what is the capital of veloria ?"
    good, bad = "the capital of veloria is tamsk .", "the capital of veloria is fesk ."
    pairs = [(prompt_ids(tok, prompt), response_ids(tok, good), response_ids(tok, bad))] * 16
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                            pad_token_id=tok.pad_token_id, num_labels=1)
        model = AutoModelForSequenceClassification.from_config(config)
        train_reward_model(model, pairs, TrainConfig(steps=40, batch_size=8, lr=3e-3,
                                                     warmup_steps=0), tok.pad_token_id, seed,
                           Checkpointer(tmp_path / str(seed), 10**6))
        members.append(model)
    ensemble = RewardEnsemble(members)
    vocab = world_vocabulary()
    off = [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(32)]
    seen = [good, bad] * 16
    _, std_seen = ensemble.score([prompt_ids(tok, prompt)] * 32,
                                 [response_ids(tok, t) for t in seen], tok.pad_token_id)
    mean_off, std_off = ensemble.score([prompt_ids(tok, prompt)] * 32,
                                       [response_ids(tok, t) for t in off], tok.pad_token_id)
    assert sum(std_off) / 32 > 1.5 * sum(std_seen) / 32
    # mean − λ·std with λ = 0 is the mean; worst case is never above it
    conservative = ensemble.score_conservative([prompt_ids(tok, prompt)] * 32,
                                               [response_ids(tok, t) for t in off],
                                               tok.pad_token_id, "worst_case")
    assert all(c <= m + 1e-12 for c, m in zip(conservative, mean_off))
    assert RewardEnsemble(members[:1]).score([prompt_ids(tok, prompt)],
                                             [response_ids(tok, good)], tok.pad_token_id)[1] is None


def test_conservative_rewards_by_hand():
    from rlxf.models.reward_ensemble import conservative_rewards
    # member m's rewards of two responses: response 0 gets 1, 3; response 1 gets 2, 2.
    per_member = [[1.0, 2.0], [3.0, 2.0]]
    assert conservative_rewards(per_member, "mean") == [2.0, 2.0]
    # population std of (1, 3) is 1: mean - 0.5 * 1 = 1.5; no disagreement on response 1.
    assert conservative_rewards(per_member, "mean_minus_std", lam=0.5) == [1.5, 2.0]
    assert conservative_rewards(per_member, "worst_case") == [1.0, 2.0]
    # the conservative choice flips which response is best: the uncertain one loses
    assert conservative_rewards([[0.0, 1.0], [4.0, 1.5]], "mean")[0] > 1.25
    assert conservative_rewards([[0.0, 1.0], [4.0, 1.5]], "mean_minus_std", lam=1.0) == [0.0, 1.0]
    with pytest.raises(ValueError, match="kind"):
        conservative_rewards(per_member, "median")
    with pytest.raises(ValueError, match="same responses"):
        conservative_rewards([[1.0], [1.0, 2.0]])


def test_shuffled_tokens_keep_the_words_and_eos():
    from rlxf.eval.reward_metrics import shuffled_tokens
    rng = random.Random(0)
    ids = [5, 6, 7, 8, 9, 2]
    out = shuffled_tokens(ids, rng)
    assert out[-1] == 2 and sorted(out[:-1]) == [5, 6, 7, 8, 9]
    assert any(shuffled_tokens(ids, rng) != ids for _ in range(5))
