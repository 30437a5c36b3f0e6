"""RL against a process reward model (issue 15 item 6): the step splitters, the `prm:` reward
source scored against a plain transformers forward (a PRM directory) and against the lab
process stage's own scoring (a lab run), the combination with outcome sources, and `rlxf
grpo|rloo --reward prm:DIR` end to end with step-level credit."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from hf_models import save_model_dir
from test_rl_from_files import FAST, _batch, _world_run, cli
from transformers import AutoModelForSequenceClassification

from rlxf.models.build import load_tokenizer
from rlxf.rewards.batch import RewardError
from rlxf.rewards.combine import RewardSources
from rlxf.rewards.steps import lab_step_ends, text_step_ends, token_step_ends

REWARDS_PY = '''
def even_tokens(prompts, completions, completion_ids, **kwargs):
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]
'''


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prm")
    model = save_model_dir(root / "llama", "llama")
    torch.manual_seed(0)
    prm = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
    prm.save_pretrained(root / "prm")
    load_tokenizer(model).save_pretrained(root / "prm")
    (root / "rewards.py").write_text(REWARDS_PY)
    words = ["what is the capital of france ?", "write a haiku about the sea .",
             "how do i kill a python process ?", "answer briefly and honestly ."]
    rows = [{"prompt": [{"role": "user", "content": w}] if i % 2 else w}
            for i, w in enumerate(words * 4)]
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, model, prompts


def test_text_steps_are_non_blank_lines():
    text = "first step\n\nsecond step\nlast"
    ends = text_step_ends(text)
    assert [text[:e] for e in ends] == ["first step\n\n", "first step\n\nsecond step\n", text]
    assert text_step_ends("") == [] and text_step_ends("one\n") == [4]


def test_lab_steps_are_sentences_ending_with_a_full_stop():
    text = "the glimmet is red . so the answer is yes ."
    assert [text[:e].strip() for e in lab_step_ends(text)] == [
        "the glimmet is red .", text]
    assert [text[:e].strip() for e in lab_step_ends("the glimmet is red . so")] == [
        "the glimmet is red .", "the glimmet is red . so"]


def test_token_step_ends_cut_the_ids_where_each_step_ends(setup):
    _, model, _ = setup
    tok = load_tokenizer(model)
    text = "the capital of france is paris .\nthe tide keeps time .\nwaves"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def decode(x):
        return tok.decode(x, skip_special_tokens=True)
    ends = token_step_ends(decode, ids, decode(ids), text_step_ends(text))
    assert [decode(ids[:e]).rstrip() for e in ends[:-1]] == [
        "the capital of france is paris .", "the capital of france is paris .\nthe tide keeps time ."]
    assert ends[-1] == len(ids)  # the last step takes the end of turn too


def test_prm_directory_scores_each_step_as_transformers_does(setup):
    root, _, _ = setup
    tok = load_tokenizer(root / "prm")
    rm = AutoModelForSequenceClassification.from_pretrained(root / "prm").eval()
    sources = RewardSources([f"prm:{root / 'prm'}"])
    msgs = [{"role": "user", "content": "the sea ?"}]
    texts = ["paris .\nthe tide keeps time .", "waves fold\n\ninto foam"]
    scored = sources(_batch(["what is the capital ?", msgs], texts, [{}, {}]))
    prompts = [tok("what is the capital ?", add_special_tokens=False)["input_ids"],
               tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"]]
    prefixes = [["paris .\n", "paris .\nthe tide keeps time ."],
                ["waves fold\n\n", "waves fold\n\ninto foam"]]
    for i, (prompt, steps) in enumerate(zip(prompts, prefixes)):
        with torch.no_grad():
            want = [sigmoid(rm(input_ids=torch.tensor(
                [prompt + tok(s, add_special_tokens=False)["input_ids"]])).logits[0, 0].item())
                for s in steps]
        assert scored.steps[i].rewards == pytest.approx(want, abs=1e-6)
        assert [texts[i][:e] for e in scored.steps[i].char_ends] == steps
        assert scored.total[i] == pytest.approx(min(want), abs=1e-6)
    assert len(set(scored.steps[0].rewards)) == 2  # two different prefixes


def test_outcome_sources_add_to_the_last_step_and_two_prms_are_refused(setup):
    root, _, _ = setup
    prm_only = RewardSources([f"prm:{root / 'prm'}"])
    both = RewardSources([f"prm:{root / 'prm'}", f"{root}/rewards.py:even_tokens"], "2,0.5")
    batch = _batch(["q", "q"], ["a .\nb .", ""], [{}, {}])
    batch = type(batch)(batch.prompts, batch.texts, [[2, 4, 5], [1]], batch.fields, batch.where)
    alone, mixed = prm_only(batch), both(batch)
    r = alone.steps[0].rewards
    # 2·σ per step, 0.5 · (2 of 3 ids even) on the last step
    assert mixed.steps[0].rewards == pytest.approx([2 * r[0], 2 * r[1] + 0.5 * 2 / 3])
    assert mixed.total[0] == pytest.approx(2 * min(r) + 0.5 * 2 / 3)
    # an empty reply has no step for the PRM: the outcome sources' reward is its one step
    assert alone.steps[1].rewards == [] and math.isnan(alone.total[1])
    assert mixed.steps[1].rewards == [0.0] and mixed.steps[1].char_ends == [0]
    with pytest.raises(RewardError, match="at most one prm:"):
        RewardSources([f"prm:{root / 'prm'}", f"prm:{root / 'prm'}"])
    with pytest.raises(RewardError, match="not a model directory"):
        RewardSources([f"prm:{root}"])


def test_lab_prm_scores_each_step_as_the_process_stage_does(tmp_path):
    from rlxf.config import ProcessConfig
    from rlxf.models.tokenizer import build_word_tokenizer, prompt_ids
    from rlxf.stages.process import _build, _prefixes, _tokens
    from rlxf.train.process import classifier_scores
    from rlxf.world.multihop import WORDS, multihop_prompts, render_steps, write_steps
    from rlxf.world.vocab import world_vocabulary
    kb, _, _ = _world_run(tmp_path)
    with pytest.raises(RewardError, match="without a process reward model"):
        RewardSources([f"prm:{tmp_path}"])
    tok = build_word_tokenizer(world_vocabulary(extra=WORDS))
    cfg = ProcessConfig()
    model = _build(cfg, tok, 3).eval()
    model.save_pretrained(tmp_path / "process" / "prm")
    tok.save_pretrained(tmp_path / "process" / "tokenizer")
    rng = random.Random(0)
    p = multihop_prompts(kb)[0]
    texts = [render_steps(write_steps(p, kb, 0.6, 0.8, rng)) for _ in range(3)]
    scored = RewardSources([f"prm:{tmp_path}"])(_batch([p.text] * 3, texts, [{}] * 3))
    for text, steps in zip(texts, scored.steps):
        prefixes = _prefixes(text)
        want = classifier_scores(model, [prompt_ids(tok, p.text)] * len(prefixes),
                                 [_tokens(tok, s) for s in prefixes], tok.pad_token_id)
        assert len(prefixes) >= 2
        assert steps.rewards == pytest.approx([sigmoid(z) for z in want], abs=1e-6)


@pytest.mark.parametrize("command,extra", [("grpo", []), ("rloo", ["--beta", 0.04]),
                                           ("grpo", ["--scale-rewards", "none", "--beta",
                                                     0.04, "--dynamic-sampling"])])
def test_rl_against_a_prm_directory_runs_with_step_credit(setup, command, extra):
    root, model, prompts = setup
    out = root / f"{command}{len(extra)}"
    result = cli(command, model, prompts, "--reward", f"prm:{root / 'prm'}", "--out", out,
                 "--steps", 3, "--batch-size", 2, "--group-size", 3, "--max-new-tokens", 8,
                 "--lr", 1e-3, "--eval-samples", 2, "--eval-every", 3, "--warmup-steps", 0,
                 "--threads", 1, *extra)
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert 0 < history[-1]["reward/mean"] < 1  # the min over steps of σ
    record = json.loads((out / "rlxf_training.json").read_text())
    assert record["rewards"][0]["kind"] == "prm"


def test_batch_scaling_is_refused_for_step_rewards_before_anything_is_written(setup):
    root, model, prompts = setup
    out = root / "refused"
    result = cli("grpo", model, prompts, "--reward", f"prm:{root / 'prm'}", "--out", out,
                 "--scale-rewards", "batch", *FAST)
    assert result.exit_code != 0 and "not built for step rewards" in result.output
    assert not out.exists() and not (root / "refused.partial").exists()


def test_grpo_credits_each_step_with_its_own_advantage(setup, monkeypatch):
    """The recipe's wiring: the step ends reach the advantage as token positions, and the loss
    gets per-token advantages that change at step boundaries (steps of two characters here,
    so every reply has several)."""
    import rlxf.rewards.process_reward as process_reward
    import rlxf.tune.rl as rl
    root, model, prompts = setup
    monkeypatch.setattr(process_reward, "text_step_ends",
                        lambda text: list(range(2, len(text), 2)) + [len(text)] if text else [])
    seen: dict = {"steps": [], "losses": []}
    real_process, real_loss = rl.process_advantages, rl.group_policy_loss

    def spy_process(rewards, ends, G, length, **kw):
        out = real_process(rewards, ends, G, length, **kw)
        seen["steps"].append((rewards, ends, length, out))
        return out

    def spy_loss(logprobs, old, advantages, mask, **kw):
        seen["losses"].append((advantages, mask))
        return real_loss(logprobs, old, advantages, mask, **kw)
    monkeypatch.setattr(rl, "process_advantages", spy_process)
    monkeypatch.setattr(rl, "group_policy_loss", spy_loss)
    result = cli("grpo", model, prompts, "--reward", f"prm:{root / 'prm'}", "--out",
                 root / "spied", "--steps", 2, "--batch-size", 2, "--group-size", 3,
                 "--max-new-tokens", 8, "--lr", 1e-3, "--eval-samples", 1, "--warmup-steps", 0,
                 "--threads", 1)
    assert result.exit_code == 0, result.output
    assert len(seen["steps"]) == len(seen["losses"]) == 2
    for (rewards, ends, length, adv), (loss_adv, mask) in zip(seen["steps"], seen["losses"]):
        assert loss_adv.shape == mask.shape == (6, length)
        torch.testing.assert_close(loss_adv, adv.float())
        for row_rewards, row_ends, n in zip(rewards, ends, mask.sum(1).long().tolist()):
            assert len(row_rewards) == len(row_ends) >= 2
            # non-decreasing: a token that spans two short steps ends both
            assert row_ends == sorted(row_ends) and row_ends[-1] == n
        # a token's advantage changes only where a step ends, and does change somewhere
        changes = {(i, t) for i in range(6) for t in range(1, length)
                   if adv[i, t] != adv[i, t - 1]}
        assert changes and changes <= {(i, e) for i, row in enumerate(ends) for e in row}
