"""Process-supervision advantages (DeepSeekMath §4.1.3) against a hand-derived case, their
reduction to the outcome advantages with one step per response, and the GRPO / RLOO losses on
per-token advantages (float64)."""

import math

import pytest
import torch

from rlxf.train.advantages import group_advantages, process_advantages, rloo_advantages
from rlxf.train.losses import group_policy_loss, rloo_loss

S3 = math.sqrt(3.0)


def test_process_advantages_match_a_hand_derived_group():
    # One group of two. Response 0: steps rewarded (1, 0) ending at tokens 2 and 3 (4 tokens,
    # the last after every step); response 1: one step rewarded 0, ending at token 3.
    # All step rewards R = (1, 0, 0): mean 1/3, unbiased std sqrt(((2/3)² + 2(1/3)²)/2) = 1/√3,
    # so r̃ = (2/√3, -1/√3, -1/√3).
    # Response 0: tokens 0-1 sum steps 0 and 1 = 1/√3; token 2 only step 1 = -1/√3; token 3: 0.
    # Response 1: tokens 0-2 = -1/√3; token 3: 0.
    adv = process_advantages([[1.0, 0.0], [0.0]], [[2, 3], [3]], group_size=2, length=4,
                             eps=0.0)
    want = torch.tensor([[1 / S3, 1 / S3, -1 / S3, 0.0], [-1 / S3, -1 / S3, -1 / S3, 0.0]],
                        dtype=torch.float64)
    torch.testing.assert_close(adv, want, rtol=0, atol=1e-12)


def test_leave_one_out_process_advantages_match_a_hand_derived_group():
    # Same group. Response 0's baseline: the mean of response 1's steps = 0 -> (1, 0);
    # response 1's baseline: mean(1, 0) = 0.5 -> -0.5. Token sums as above.
    adv = process_advantages([[1.0, 0.0], [0.0]], [[2, 3], [3]], group_size=2, length=4,
                             leave_one_out=True)
    want = torch.tensor([[1.0, 1.0, 0.0, 0.0], [-0.5, -0.5, -0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(adv, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo"])
def test_one_step_per_response_reduces_to_the_outcome_advantage(kind):
    g = torch.Generator().manual_seed(0)
    P, G, T = 3, 4, 5
    rewards = torch.rand(P, G, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (P * G,), generator=g).tolist()
    adv = process_advantages([[r] for r in rewards.flatten().tolist()],
                             [[n] for n in lengths], group_size=G, length=T,
                             scale=kind == "grpo", leave_one_out=kind == "rloo")
    outcome = (rloo_advantages(rewards) if kind == "rloo"
               else group_advantages(rewards, scale=kind == "grpo")).flatten()
    for i, n in enumerate(lengths):
        torch.testing.assert_close(adv[i, :n], outcome[i].expand(n), rtol=0, atol=1e-12)
        assert torch.all(adv[i, n:] == 0)


def test_process_advantages_reject_mismatched_steps():
    with pytest.raises(ValueError, match="2 rewards and 1 ends"):
        process_advantages([[1.0, 0.0], [0.0]], [[2], [3]], group_size=2, length=4)


def _batch():
    g = torch.Generator().manual_seed(1)
    logprobs = -torch.rand(3, 4, generator=g, dtype=torch.float64)
    old = logprobs - 0.3 * torch.rand(3, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.float64)
    return logprobs, old, mask


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_constant_per_token_advantages_give_the_per_response_loss(loss_type, level):
    logprobs, old, mask = _batch()
    adv = torch.tensor([0.7, -1.2, 0.4], dtype=torch.float64)
    kw = dict(loss_type=loss_type, importance_level=level, clip_low=0.2, clip_high=0.28,
              max_completion_length=4)
    per_response = group_policy_loss(logprobs, old, adv, mask, **kw)
    per_token = group_policy_loss(logprobs, old, adv[:, None].expand(3, 4), mask, **kw)
    torch.testing.assert_close(per_token.loss, per_response.loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(per_token.clipfrac, per_response.clipfrac, rtol=0, atol=1e-12)


def test_group_policy_loss_with_per_token_advantages_matches_a_hand_value():
    # At the sampling policy (ratio 1, nothing clipped) the grpo loss is
    # -1/B Σ_i 1/|o_i| Σ_t A_it: row 0 -(1 + 2)/2 = -1.5, row 1 -(-1)/1 = 1 -> mean -0.25.
    logprobs = torch.zeros(2, 2, dtype=torch.float64)
    adv = torch.tensor([[1.0, 2.0], [-1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    out = group_policy_loss(logprobs, logprobs, adv, mask)
    assert out.loss.item() == pytest.approx(-0.25, abs=1e-15)


def test_rloo_loss_with_per_token_advantages_matches_a_hand_value_and_the_constant_case():
    # -1/B Σ_i Σ_t A_it log π_it: row 0 -(1·(-0.5) + 2·(-1)) = 2.5, row 1 -(-1·(-2)) = -2
    # (the masked token ignored) -> 0.25.
    logprobs = torch.tensor([[-0.5, -1.0], [-2.0, -3.0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, 2.0], [-1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    assert rloo_loss(logprobs, adv, mask).item() == pytest.approx(0.25, abs=1e-15)
    constant = torch.tensor([0.3, -0.6], dtype=torch.float64)
    torch.testing.assert_close(rloo_loss(logprobs, constant[:, None].expand(2, 2), mask),
                               rloo_loss(logprobs, constant, mask), rtol=0, atol=1e-12)
