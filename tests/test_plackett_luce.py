"""Plackett-Luce loss for k-wise rankings: a hand-derived value, Bradley-Terry at k = 2, and the
probability of every permutation computed independently by enumeration (it must sum to 1)."""

import itertools
import math

import pytest
import torch

from rlxf.train.losses import bradley_terry_loss, plackett_luce_loss


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def pl_probability(scores: list[float], order: tuple[int, ...]) -> float:
    """P(order) under Plackett-Luce by the sequential-choice definition, in plain floats:
    pick order[0] from all with probability ∝ exp(score), then order[1] from the rest, ..."""
    remaining, p = list(range(len(scores))), 1.0
    for i in order:
        p *= math.exp(scores[i]) / sum(math.exp(scores[j]) for j in remaining)
        remaining.remove(i)
    return p


def test_hand_derived_three_way_ranking():
    # ranked rewards 2 > 1 > 0: P = e²/(e²+e+1) · e/(e+1); loss = -log P = 0.7208677
    e = math.e
    expected = -(2 - math.log(e**2 + e + 1) + 1 - math.log(e + 1))
    assert expected == pytest.approx(0.7208676520, abs=1e-9)
    assert plackett_luce_loss(t([2.0, 1.0, 0.0])).item() == pytest.approx(expected, abs=1e-12)


def test_two_way_ranking_is_bradley_terry():
    chosen, rejected = t(0.3, -1.2, 2.5), t(1.1, 0.4, -0.7)
    pl = plackett_luce_loss(torch.stack([chosen, rejected], dim=1))
    assert pl.item() == pytest.approx(bradley_terry_loss(chosen, rejected).item(), abs=1e-12)


def test_matches_enumeration_of_every_permutation():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(5, generator=gen, dtype=torch.float64).tolist()
    perms = list(itertools.permutations(range(5)))
    total = sum(pl_probability(scores, p) for p in perms)
    assert total == pytest.approx(1.0, abs=1e-12)  # a distribution over rankings
    for order in perms[::17]:
        ranked = t([scores[i] for i in order])
        assert plackett_luce_loss(ranked).item() == pytest.approx(
            -math.log(pl_probability(scores, order)), abs=1e-10)


def test_padded_rankings_equal_their_unpadded_selves_and_keep_finite_gradients():
    three = [0.5, -0.2, 1.0]
    two = [0.7, 0.1]
    rewards = t([*three, 9.0], [*two, -5.0, 3.0]).requires_grad_(True)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    loss = plackett_luce_loss(rewards, mask)
    expected = (plackett_luce_loss(t(three)) + plackett_luce_loss(t(two))) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    loss.backward()
    assert torch.isfinite(rewards.grad).all()
    assert rewards.grad[0, 3] == 0 and rewards.grad[1, 2:].abs().sum() == 0
    # the top response is pushed up, the last one down
    assert rewards.grad[0, 0] < 0 < rewards.grad[0, 2]
