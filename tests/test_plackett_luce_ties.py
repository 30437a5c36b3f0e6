"""Plackett-Luce for partial (top-k) and tied rankings (losses.plackett_luce_weak_order_loss):
hand-derived values, the enumeration of every order a weak order allows, strict rankings equal
to plain Plackett-Luce, padding and gradients."""

import itertools
import math

import pytest
import torch

from rlxf.train.losses import plackett_luce_loss, plackett_luce_weak_order_loss


def t(*rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


def lv(*rows):
    return torch.tensor(rows, dtype=torch.long)


def pl_probability(alpha: list[float], order) -> float:
    """Sequential choice with worths alpha, in plain floats."""
    remaining, p = list(range(len(alpha))), 1.0
    for i in order:
        p *= alpha[i] / sum(alpha[j] for j in remaining)
        remaining.remove(i)
    return p


def weak_order_probability(alpha: list[float], levels: list[int]) -> float:
    """Independent reference: sum PL over every full order that respects the levels."""
    return sum(pl_probability(alpha, order) for order in itertools.permutations(range(len(alpha)))
               if all(levels[a] <= levels[b] for a, b in zip(order, order[1:])))


def test_partial_ranking_2_0_of_four_responses_by_hand():
    # worths α = (1, 2, 3, 4) (rewards log α); top-2 ranking [2, 0]: response 2 first of all,
    # then 0 from {0, 1, 3}; 1 and 3 unranked. P = 3/10 · 1/7 = 3/70.
    r = t([math.log(a) for a in (1, 2, 3, 4)])
    levels = lv([1, 2, 0, 2])  # response 2 best, then 0, then {1, 3}
    assert plackett_luce_weak_order_loss(r, levels).item() == pytest.approx(
        -math.log(3 / 70), abs=1e-12)


def test_a_tie_by_hand():
    # α = (1, 2, 3); 0 and 1 tied at the top, 2 last: both orders of the tie count.
    # P = 1/6 · 2/5 + 2/6 · 1/4 = 1/15 + 1/12 = 3/20.
    r = t([0.0, math.log(2), math.log(3)])
    assert plackett_luce_weak_order_loss(r, lv([0, 0, 1])).item() == pytest.approx(
        -math.log(3 / 20), abs=1e-12)
    # everything tied: every order counts, probability 1
    assert plackett_luce_weak_order_loss(r, lv([0, 0, 0])).item() == pytest.approx(0, abs=1e-12)


def test_strict_rankings_are_plain_plackett_luce():
    gen = torch.Generator().manual_seed(1)
    r = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    levels = torch.arange(5).repeat(3, 1)
    assert plackett_luce_weak_order_loss(r, levels).item() == pytest.approx(
        plackett_luce_loss(r).item(), abs=1e-12)


@pytest.mark.parametrize("levels", [[0, 1, 1, 2, 3], [2, 0, 2, 1, 1], [0, 0, 1, 1, 1],
                                    [1, 0, 1, 1, 1], [3, 2, 1, 0, 0]])
def test_matches_enumeration_of_the_orders_a_weak_order_allows(levels):
    gen = torch.Generator().manual_seed(sum(levels))
    r = torch.randn(5, generator=gen, dtype=torch.float64)
    expected = -math.log(weak_order_probability(r.exp().tolist(), levels))
    assert plackett_luce_weak_order_loss(r[None], lv(levels)).item() == pytest.approx(
        expected, abs=1e-10)


def test_padding_batches_and_gradients():
    three, four = [0.4, -1.0, 0.9], [0.2, 0.3, -0.5, 1.5]
    rewards = t([*three, 7.0], four).requires_grad_(True)
    levels = lv([0, 0, 1, 0], [1, 0, 2, 2])
    mask = torch.tensor([[True, True, True, False], [True] * 4])
    loss = plackett_luce_weak_order_loss(rewards, levels, mask)
    alone = [plackett_luce_weak_order_loss(t(three), lv([0, 0, 1])),
             plackett_luce_weak_order_loss(t(four), lv([1, 0, 2, 2]))]
    assert loss.item() == pytest.approx(sum(x.item() for x in alone) / 2, abs=1e-12)
    loss.backward()
    assert torch.isfinite(rewards.grad).all() and rewards.grad[0, 3] == 0
    # the gradient is that of the reference probability (central differences)
    eps, base = 1e-6, four[:]
    for i in range(4):
        up, down = base[:], base[:]
        up[i] += eps
        down[i] -= eps
        f = lambda s: -math.log(weak_order_probability([math.exp(v) for v in s], [1, 0, 2, 2]))  # noqa: E731
        assert rewards.grad[1, i].item() == pytest.approx((f(up) - f(down)) / (2 * eps) / 2,
                                                          abs=1e-6)
    # float32 works the same
    r32 = plackett_luce_weak_order_loss(t(four, dtype=torch.float32), lv([1, 0, 2, 2]))
    assert r32.item() == pytest.approx(alone[1].item(), abs=1e-5)


def test_too_many_responses_are_refused():
    with pytest.raises(ValueError, match="at most 12"):
        plackett_luce_weak_order_loss(torch.zeros(1, 13), torch.zeros(1, 13, dtype=torch.long))
