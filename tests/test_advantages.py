"""Advantage estimators: GAE against a hand-worked example and an independent per-row reference,
whitening, and the GRPO / RLOO group baselines against hand-computed values (float64)."""

import math

import pytest
import torch

from rlxf.train.advantages import (gae, group_advantages, masked_mean, masked_var,
                                   rloo_advantages, whiten)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_gae_matches_a_hand_worked_three_step_example():
    # γ = 0.9, λ = 0.8 (γλ = 0.72). Row 0: r = (0, 0, 1), V = (0.5, 0.6, 0.7), all valid:
    #   δ2 = 1 + 0.9·0 - 0.7 = 0.3                     Â2 = 0.3
    #   δ1 = 0 + 0.9·0.7 - 0.6 = 0.03                  Â1 = 0.03 + 0.72·0.3 = 0.246
    #   δ0 = 0 + 0.9·0.6 - 0.5 = 0.04                  Â0 = 0.04 + 0.72·0.246 = 0.21712
    #   returns Â + V = (0.71712, 0.846, 1.0)
    # Row 1: r = (0.5, 1, junk), V = (0.2, 0.4, junk), mask (1, 1, 0): the episode ends at t = 1
    #   δ1 = 1 + 0.9·0 - 0.4 = 0.6                     Â1 = 0.6
    #   δ0 = 0.5 + 0.9·0.4 - 0.2 = 0.66                Â0 = 0.66 + 0.72·0.6 = 1.092
    #   returns (1.292, 1.0, 0)
    rewards = t(0.0, 0.0, 1.0, 0.5, 1.0, 9.0).view(2, 3)
    values = t(0.5, 0.6, 0.7, 0.2, 0.4, -7.0).view(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    assert torch.allclose(adv, t(0.21712, 0.246, 0.3, 1.092, 0.6, 0.0).view(2, 3), atol=1e-12, rtol=0)
    assert torch.allclose(ret, t(0.71712, 0.846, 1.0, 1.292, 1.0, 0.0).view(2, 3), atol=1e-12, rtol=0)


def _gae_reference(rewards, values, mask, gamma, lam):
    """Per row, in plain Python floats, over the valid prefix only: the direct sum
    Â_t = Σ_l (γλ)^l δ_{t+l} of Schulman et al. 2016, eq. 16 (no recursion)."""
    B, T = rewards.shape
    adv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        n = int(mask[b].sum())
        r, v = rewards[b].tolist()[:n], values[b].tolist()[:n] + [0.0]
        deltas = [r[i] + gamma * v[i + 1] - v[i] for i in range(n)]
        for i in range(n):
            adv[b][i] = sum((gamma * lam) ** l * deltas[i + l] for l in range(n - i))
    return torch.tensor(adv, dtype=torch.float64)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.99, 0.9), (0.9, 0.0), (0.8, 1.0)])
def test_gae_matches_a_direct_sum_reference_on_ragged_batches(gamma, lam):
    g = torch.Generator().manual_seed(0)
    B, T = 6, 9
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    adv, ret = gae(rewards, values, mask, gamma, lam)
    expected = _gae_reference(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, expected, atol=1e-12, rtol=0)
    assert torch.allclose(ret, (expected + values) * mask, atol=1e-12, rtol=0)


def test_gae_limits_are_monte_carlo_and_td0():
    rewards, values = t(1.0, -2.0, 3.0).view(1, 3), t(0.5, 0.25, -1.0).view(1, 3)
    mask = torch.ones(1, 3)
    # λ = 1, γ = 1: Â_t = Σ_{k≥t} r_k - V_t = (2 - 0.5, 1 - 0.25, 3 + 1) = (1.5, 0.75, 4)
    assert torch.allclose(gae(rewards, values, mask, 1.0, 1.0)[0], t(1.5, 0.75, 4.0).view(1, 3))
    # λ = 0: Â_t = δ_t = r_t + γV_{t+1} - V_t, γ = 0.5: (1 + 0.125 - 0.5, -2 - 0.5 - 0.25, 3 - 0 + 1)
    assert torch.allclose(gae(rewards, values, mask, 0.5, 0.0)[0], t(0.625, -2.75, 4.0).view(1, 3))


def test_whiten_matches_hand_computed_values_and_ignores_padding():
    # x = (1, 2, 3, 4): mean 2.5, unbiased var (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3
    x = t(1.0, 2.0, 3.0, 4.0)
    expected = (x - 2.5) / math.sqrt(5 / 3 + 1e-8)
    assert torch.allclose(whiten(x), expected, atol=1e-12, rtol=0)
    # padding (100) is ignored: mean 2, var (1 + 0 + 1)/2 = 1 -> (-1, 0, 1)/sqrt(1 + 1e-8), pad -> 0
    x = t(1.0, 2.0, 3.0, 100.0).view(2, 2)
    mask = torch.tensor([[1, 1], [1, 0]])
    got = whiten(x, mask)
    assert torch.allclose(got, t(-1.0, 0.0, 1.0, 0.0).view(2, 2) / math.sqrt(1 + 1e-8), atol=1e-12, rtol=0)
    # shift_mean=False keeps the mean: (-1, 0, 1)/sqrt(1 + 1e-8) + 2
    assert torch.allclose(whiten(x, mask, shift_mean=False)[0], t(-1.0, 0.0) / math.sqrt(1 + 1e-8) + 2)
    assert abs(masked_mean(x, mask).item() - 2.0) < 1e-15 and abs(masked_var(x, mask).item() - 1.0) < 1e-15
    with pytest.raises(ValueError):
        masked_var(x, torch.tensor([[1, 0], [0, 0]]))


def test_grpo_group_advantages_match_hand_computed_values():
    # group (1, 2, 3, 6): mean 3, deviations (-2, -1, 0, 3), unbiased std sqrt(14/3) = 2.160246899469287
    # second group is constant: all advantages 0 (no signal), not NaN
    rewards = t(1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0).view(2, 4)
    adv = group_advantages(rewards)
    assert torch.allclose(adv[0], t(-2.0, -1.0, 0.0, 3.0) / (2.160246899469287 + 1e-4), atol=1e-12, rtol=0)
    assert torch.equal(adv[1], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(group_advantages(rewards, scale=False)[0], t(-2.0, -1.0, 0.0, 3.0))
    with pytest.raises(ValueError):
        group_advantages(t(1.0, 2.0))


def test_rloo_advantages_match_hand_computed_values():
    # group (1, 2, 3, 6), sum 12: baselines (11/3, 10/3, 9/3, 6/3)
    # Â = (1 - 11/3, 2 - 10/3, 3 - 3, 6 - 2) = (-8/3, -4/3, 0, 4) = 4/3 · (-2, -1, 0, 3)
    adv = rloo_advantages(t(1.0, 2.0, 3.0, 6.0).view(1, 4))
    assert torch.allclose(adv, t(-8 / 3, -4 / 3, 0.0, 4.0).view(1, 4), atol=1e-15, rtol=0)


def test_rloo_baseline_does_not_depend_on_the_sample_it_scores():
    # ∂Â_i/∂r_j = 1 if i = j else -1/(G-1): the baseline of i is built from the others only
    G = 5
    jac = torch.autograd.functional.jacobian(lambda r: rloo_advantages(r.view(1, G)).flatten(),
                                             torch.randn(G, dtype=torch.float64))
    expected = torch.full((G, G), -1 / (G - 1), dtype=torch.float64).fill_diagonal_(1.0)
    assert torch.allclose(jac, expected, atol=1e-15, rtol=0)


def test_batch_scaled_advantages_hand_derived():
    """REINFORCE++-baseline: group mean as baseline, the batch's std as scale. Rewards
    [[1, 0], [3, 3]]: group means 0.5 and 3; batch mean 1.75, unbiased batch variance
    ((0.75² + 1.75² + 1.25² + 1.25²) / 3) = 2.25, std 1.5."""
    from rlxf.train.advantages import batch_scaled_advantages
    adv = batch_scaled_advantages(torch.tensor([[1.0, 0.0], [3.0, 3.0]], dtype=torch.float64))
    expected = torch.tensor([[0.5, -0.5], [0.0, 0.0]], dtype=torch.float64) / (1.5 + 1e-4)
    assert torch.allclose(adv, expected, atol=1e-12, rtol=0)


def test_dynamic_sampling_and_overlong_filtering():
    from rlxf.train.advantages import groups_with_signal, overlong_filtered
    keep = groups_with_signal(torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [2.0, 2.0, 2.5]]))
    assert keep.tolist() == [False, True, True]
    mask = torch.ones(3, 4)
    out = overlong_filtered(mask, torch.tensor([False, True, False]))
    assert out.sum(1).tolist() == [4.0, 0.0, 4.0]
