"""GRPO / RLOO recipes (train/group_rl.py) on a real tiny causal LM whose task is a bandit with a
known optimum, the safe-RL Lagrangian with a stub cost, exact resume, and the pure pieces
(dual ascent, Lagrangian reward, unscored samples) by hand; the conservative ensemble reward
is models/reward_ensemble.conservative_rewards, checked in test_reward_eval.py."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlxf.config import GroupRLConfig, PolicyConfig, SafeRLConfig
from rlxf.train.group_rl import dual_ascent, fill_unscored, lagrangian_reward, train_group_rl
from rlxf.train.loop import Checkpointer

PAD, BOS, EOS = 0, 1, 2
ARMS = (3, 4, 5)  # the first response token is the "arm"; the prompt is just <bos>
PROMPTS = [[BOS]] * 4


def tiny_lm(seed: int = 0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=6, n_positions=8, n_embd=16, n_layer=1,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS))


@torch.no_grad()
def first_token_probs(model) -> torch.Tensor:
    return model(input_ids=torch.tensor([[BOS]])).logits[0, -1].softmax(-1)


def arm_reward(values: dict[int, float]):
    return lambda prompts, responses: [values.get(r[0], 0.0) for r in responses]


def train(tmp_path, algorithm="grpo", steps=30, reward=None, cost_fn=None, safe=None,
          updates=1, on_step=None, lr=0.05, checkpoint_every=1000, seed=0):
    policy, reference = tiny_lm(), tiny_lm()
    cfg = PolicyConfig(algorithm=algorithm, steps=steps, batch_size=4, lr=lr, warmup_steps=0,
                       checkpoint_every=checkpoint_every,
                       group=GroupRLConfig(group_size=8, kl_coef=0.0,
                                           updates_per_rollout=updates),
                       safe=safe or SafeRLConfig())
    torch.set_num_threads(1)
    result = train_group_rl(policy, reference, PROMPTS, reward or arm_reward({4: 1.0}), cfg,
                            PAD, EOS, max_new_tokens=2, seed=seed,
                            ckpt=Checkpointer(tmp_path / "ckpt", checkpoint_every),
                            on_step=on_step, cost_fn=cost_fn)
    return policy, result


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_group_rl_finds_the_best_arm_of_a_token_bandit(tmp_path, algorithm):
    before = first_token_probs(tiny_lm())[4].item()
    policy, result = train(tmp_path, algorithm)
    after = first_token_probs(policy)[4].item()
    assert before < 0.3 and after > 0.9, (before, after)
    assert result["throughput/completions_per_s"] > 0 and result["steps"] == 30


def test_safe_rl_keeps_the_expected_cost_under_its_threshold(tmp_path):
    # arm 4 has the highest reward but costs 1; arm 5 is the best safe arm. Unconstrained, the
    # policy takes arm 4; with E[cost] <= 0.1 the constrained optimum puts <= 0.1 on arm 4.
    reward = arm_reward({4: 1.0, 5: 0.6})
    cost = lambda prompts, responses: [float(r[0] == 4) for r in responses]  # noqa: E731
    unsafe, _ = train(tmp_path / "free", reward=reward)
    safe, result = train(tmp_path / "safe", reward=reward, cost_fn=cost,
                         safe=SafeRLConfig(cost_threshold=0.1, lagrangian_init=1.0,
                                           lagrangian_lr=0.05))
    assert first_token_probs(unsafe)[4] > 0.9
    p = first_token_probs(safe)
    assert p[4] < 0.1 and p[5] > 0.8, p
    # the constraint went slack, so dual ascent lowered λ, but not below 0
    assert 0.0 <= result["safe/lambda_final"] < 1.0
    assert result["cost/train"] < 0.2


def test_a_cost_function_without_a_threshold_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cost_threshold"):
        train(tmp_path, steps=1, cost_fn=lambda p, r: [0.0] * len(r))


def test_interrupted_grpo_resumes_to_the_same_parameters(tmp_path):
    class Stop(Exception):
        pass

    def stop_at_4(step, metrics):
        if step == 4:
            raise Stop

    full, _ = train(tmp_path / "full", steps=6, updates=2, checkpoint_every=3)
    with pytest.raises(Stop):
        train(tmp_path / "cut", steps=6, updates=2, checkpoint_every=3, on_step=stop_at_4)
    resumed, result = train(tmp_path / "cut", steps=6, updates=2, checkpoint_every=3)
    assert result["resumed_from_step"] == 3
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_unscored_samples_get_no_gradient(tmp_path):
    # A judge that never answers: every reward is NaN, every advantage 0, nothing moves.
    policy, result = train(tmp_path, steps=2, reward=lambda p, r: [math.nan] * len(r))
    assert result["reward/unscored"] == 1.0
    for a, b in zip(policy.parameters(), tiny_lm().parameters()):
        assert torch.equal(a, b)


# --- pure pieces, by hand ------------------------------------------------------------------------

def test_dual_ascent_matches_hand_values_and_projects_onto_nonnegative():
    assert dual_ascent(1.0, mean_cost=0.5, threshold=0.2, lr=0.1) == pytest.approx(1.03)
    assert dual_ascent(1.0, mean_cost=0.0, threshold=0.2, lr=0.1) == pytest.approx(0.98)
    assert dual_ascent(0.01, mean_cost=0.0, threshold=0.2, lr=0.1) == 0.0


def test_lagrangian_reward_matches_hand_value():
    # (2 - 0.5·3) / 1.5 = 1/3
    out = lagrangian_reward(torch.tensor([2.0]), torch.tensor([3.0]), 0.5)
    assert out.item() == pytest.approx(1 / 3)


def test_fill_unscored_uses_the_mean_of_the_scored_group_members():
    nan = math.nan
    out = fill_unscored(torch.tensor([[1.0, nan, 3.0], [nan, nan, nan]]))
    assert torch.equal(out, torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))


# --- the sampler and the log-prob path -----------------------------------------------------------

def test_rollout_samples_each_prompt_once_and_falls_back_to_generate_for_wrapped_models():
    """A plain GPT-2 samples through models/group_sampling.sample_groups; a peft-wrapped one
    (no tested KV-cache path) through transformers' generate on the repeated prompts. Fresh
    adapters leave the function unchanged, so the reference log-probs of the two paths (shared
    prefix vs full forwards, gathered into the response layout) agree."""
    from rlxf.config import LoraConfig
    from rlxf.models.generate import sample_response_ids
    from rlxf.models.group_sampling import sample_groups
    from rlxf.models.lora import add_lora
    from rlxf.train.group_rl import rollout

    torch.set_num_threads(1)
    prompts = [[BOS, 3], [BOS], [BOS, 4, 5]]
    kw = dict(temperature=1.0, max_new_tokens=3, seed=5, pad_id=PAD, eos_id=EOS)
    plain = rollout(tiny_lm(), tiny_lm(), prompts, 4, PAD, EOS, 3, seed=5)
    assert plain.responses == sample_groups(tiny_lm(), prompts, 4, **kw)
    assert plain.prompts == [p for p in prompts for _ in range(4)]
    wrapped_policy = add_lora(tiny_lm(), LoraConfig(r=2))
    wrapped = rollout(wrapped_policy, add_lora(tiny_lm(), LoraConfig(r=2)), prompts, 4, PAD, EOS,
                      3, seed=5)
    assert wrapped.responses == sample_response_ids(
        tiny_lm(), [p for p in prompts for _ in range(4)], **kw)
    # the same function on both paths: compare on the wrapped rollout's samples
    shared = rollout(tiny_lm(), tiny_lm(), prompts, 4, PAD, EOS, 3, seed=5)
    shared_ref = shared.logprobs(tiny_lm(), PAD)
    fallback_ref = shared.logprobs(add_lora(tiny_lm(), LoraConfig(r=2)), PAD)
    assert torch.allclose(shared_ref, fallback_ref, atol=1e-6, rtol=0)
    assert torch.equal(shared_ref != 0, shared.mask.bool())
    assert torch.allclose(wrapped.mask.sum(1), torch.tensor(
        [float(len(r)) for r in wrapped.responses]))


def test_group_rl_trains_a_peft_wrapped_policy(tmp_path):
    """The fallback path end to end: only adapter weights move."""
    from rlxf.config import LoraConfig
    from rlxf.models.lora import add_lora

    policy = add_lora(tiny_lm(), LoraConfig(r=2))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    cfg = PolicyConfig(algorithm="grpo", steps=2, batch_size=2, lr=0.05, warmup_steps=0,
                       checkpoint_every=1000, group=GroupRLConfig(group_size=4, kl_coef=0.1))
    torch.set_num_threads(1)
    result = train_group_rl(policy, tiny_lm(), PROMPTS, arm_reward({4: 1.0}), cfg, PAD, EOS,
                            max_new_tokens=2, seed=0, ckpt=Checkpointer(tmp_path, 1000))
    changed = {k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k for k in changed)
    assert result["steps"] == 2 and math.isfinite(result["loss/grpo"])
