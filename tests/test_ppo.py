"""The PPO recipe (rlxf.train.ppo) end to end on a tiny language model: response columns by hand,
a one-token bandit whose KL-regularised optimum is known in closed form, and exact resume.
(The losses and GAE alone are checked by hand in test_losses.py and test_advantages.py.)"""

import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config

from rlxf.config import PolicyConfig, PPOConfig
from rlxf.train.loop import Checkpointer
from rlxf.train.ppo import PolicyWithValue, response_columns, train_ppo

PAD, EOS, GOOD = 0, 1, 2
PROMPT = [3, 2]


def tiny_lm(seed: int = 0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=4, n_positions=8, n_embd=8, n_layer=1, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD, eos_token_id=EOS,
                     bos_token_id=3)
    return AutoModelForCausalLM.from_config(cfg)


def next_token_probs(lm) -> torch.Tensor:
    with torch.no_grad():
        return lm(input_ids=torch.tensor([PROMPT])).logits[0, -1].softmax(-1).double()


def bandit_reward(prompts, responses):
    """Reward 1 for answering with token GOOD, 0 for anything else; one-token episodes."""
    return [1.0 if r[0] == GOOD else 0.0 for r in responses]


def ppo_config(kl_coef: float, steps: int, **kw) -> PolicyConfig:
    return PolicyConfig(algorithm="ppo", steps=steps, batch_size=64, lr=2e-2, warmup_steps=0,
                        eval_every=1000, checkpoint_every=kw.pop("checkpoint_every", 1000),
                        ppo=PPOConfig(kl_coef=kl_coef, epochs=2, minibatches=2, vf_coef=0.5, **kw))


def run_bandit(kl_coef: float, steps: int, tmp_path, seed: int = 0, **kw):
    lm = tiny_lm()
    reference = copy.deepcopy(lm)
    model = PolicyWithValue(lm)
    result = train_ppo(model, reference, [PROMPT], bandit_reward, ppo_config(kl_coef, steps, **kw),
                       pad_id=PAD, eos_id=EOS, max_new_tokens=1, seed=seed,
                       ckpt=Checkpointer(tmp_path, 1000))
    return model, reference, result


def test_response_columns_by_hand():
    # prompt lengths 3 and 1, responses of 2 and 3 tokens: token j of row i is predicted at column
    # len(prompt_i) - 1 + j of the (B, T-1) outputs -> row 0: 2, 3 (pad -> 2); row 1: 0, 1, 2
    index, mask = response_columns([[5, 5, 5], [5]], [[7, 8], [7, 8, 9]])
    assert index.tolist() == [[2, 3, 2], [0, 1, 2]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_ppo_recipe_reaches_the_kl_regularised_optimum_of_a_bandit(tmp_path):
    # With reward r(a) and a per-token KL penalty β to the reference, the optimum of
    # E[r] - β KL(π || ref) is π*(a) ∝ ref(a) exp(r(a)/β) (Ziegler et al. 2019; Rafailov et al.
    # 2023, eq. 4). β = 0.5: π*(GOOD) = ref·e² / (ref·e² + 1 - ref), well below 1.
    beta = 0.5
    model, reference, _ = run_bandit(beta, 120, tmp_path)
    ref = next_token_probs(reference)[GOOD].item()
    optimum = ref * math.exp(1 / beta) / (ref * math.exp(1 / beta) + 1 - ref)
    got = next_token_probs(model.lm)[GOOD].item()
    assert 0.5 < optimum < 0.85
    assert abs(got - optimum) < 0.04, (got, optimum, ref)  # measured: 0.010 (seeds 0, 1)


def test_ppo_recipe_without_kl_penalty_goes_to_the_best_arm(tmp_path):
    model, reference, result = run_bandit(0.0, 60, tmp_path)
    assert next_token_probs(reference)[GOOD] < 0.5
    assert next_token_probs(model.lm)[GOOD] > 0.95
    assert result["reward/score"] > 0.9


def test_adaptive_controller_moves_the_coefficient_toward_the_target(tmp_path):
    # the policy leaves the reference (KL above a tiny target): β must rise from its start
    _, _, result = run_bandit(0.05, 30, tmp_path, kl_target=0.01, kl_horizon=500)
    assert result["kl/coef_final"] > 0.05


def test_resumed_ppo_equals_an_uninterrupted_run(tmp_path):
    cfg = ppo_config(0.1, 6, checkpoint_every=3)
    runs = {}
    for name, stop_at in (("whole", None), ("resumed", 3)):
        ckpt_dir = tmp_path / name
        if stop_at:  # crash after step 3's checkpoint; a fresh model resumes from it
            def crash(step, metrics):
                if step == stop_at:
                    raise KeyboardInterrupt
            with pytest.raises(KeyboardInterrupt):
                train_ppo(PolicyWithValue(tiny_lm()), tiny_lm(), [PROMPT], bandit_reward, cfg,
                          pad_id=PAD, eos_id=EOS, max_new_tokens=1, seed=4,
                          ckpt=Checkpointer(ckpt_dir, 3), on_step=crash)
        model = PolicyWithValue(tiny_lm())
        result = train_ppo(model, tiny_lm(), [PROMPT], bandit_reward, cfg, pad_id=PAD, eos_id=EOS,
                           max_new_tokens=1, seed=4, ckpt=Checkpointer(ckpt_dir, 3))
        runs[name] = (model, result)
    assert runs["resumed"][1]["resumed_from_step"] == 3
    for a, b in zip(runs["whole"][0].state_dict().values(), runs["resumed"][0].state_dict().values()):
        assert torch.equal(a, b)


def test_ppo_on_several_processes_is_refused_saying_why(tmp_path):
    """PPO's whitening, minibatches and rollout seed are the whole rollout's (docs/SCALE.md):
    launched on two processes it stops before any work, naming them and what to use instead."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType
    two = SimpleNamespace(num_processes=2, distributed_type=DistributedType.MULTI_CPU)
    with pytest.raises(ValueError, match=r"one process, got 2: .*whitened over the whole "
                                         r"rollout.*minibatch.*one seed.*use grpo or rloo"):
        train_ppo(PolicyWithValue(tiny_lm()), tiny_lm(), [PROMPT], bandit_reward,
                  ppo_config(0.1, 1), pad_id=PAD, eos_id=EOS, max_new_tokens=1, seed=0,
                  ckpt=Checkpointer(tmp_path, 1000), accelerator=two)
