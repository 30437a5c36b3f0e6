"""Best-of-n: selection, the exact distribution of a discrete base, and the issue's bar — the
empirical KL(best-of-n || base) within 10% of log n - (n-1)/n for n in {2, 4, 8, 16}."""

import itertools
import math

import pytest
import torch

from rlxf.train.bon import (best_of_n, bon_kl, bon_kl_estimate, bon_kl_exact, bon_probs,
                            sample_best_of_n)


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_bon_kl_matches_hand_computed_values():
    assert bon_kl(1) == 0.0
    # log 2 - 1/2 = 0.6931471805599453 - 0.5
    assert abs(bon_kl(2) - 0.1931471805599453) < 1e-15
    # log 16 - 15/16 = 2.772588722239781 - 0.9375
    assert abs(bon_kl(16) - 1.835088722239781) < 1e-15


def test_best_of_n_picks_the_highest_reward_and_the_first_of_a_tie():
    assert best_of_n(t(0.1, 0.9, 0.9, -2.0, 0.0, -1.0).view(2, 3)).tolist() == [1, 1]


def test_bon_probs_match_a_hand_computed_example():
    # rewards sorted: y3 (r 0, p .4), y1 (r 1, p .2), y2 (r 2, p .3), y0 (r 3, p .1); F = .4, .6, .9, 1
    # n = 2: q(y3) = .16, q(y1) = .36 - .16 = .2, q(y2) = .81 - .36 = .45, q(y0) = 1 - .81 = .19
    q = bon_probs(t(0.1, 0.2, 0.3, 0.4), t(3.0, 1.0, 2.0, 0.0), n=2)
    assert torch.allclose(q, t(0.19, 0.2, 0.45, 0.16), atol=1e-15, rtol=0)


def _enumerated(p, rewards, n):
    """Every ordered n-tuple of draws with its probability; the winner is argmax (first on ties)."""
    q = torch.zeros_like(p)
    for tup in itertools.product(range(len(p)), repeat=n):
        winner = tup[int(torch.argmax(rewards[list(tup)]))]
        q[winner] += math.prod(p[i].item() for i in tup)
    return q


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bon_probs_match_enumeration_including_ties(n):
    p, rewards = t(0.35, 0.1, 0.25, 0.2, 0.1), t(1.0, 2.0, 2.0, 0.0, 1.0)
    assert torch.allclose(bon_probs(p, rewards, n), _enumerated(p, rewards, n), atol=1e-12, rtol=0)


def test_sampled_best_of_n_follows_the_exact_distribution():
    p, rewards = t(0.35, 0.1, 0.25, 0.2, 0.1), t(1.0, 2.0, 2.0, 0.0, 1.0)
    g = torch.Generator().manual_seed(0)
    draws = sample_best_of_n(p, rewards, 3, 50_000, g)
    freq = torch.bincount(draws, minlength=5).to(torch.float64) / 50_000
    # standard error of a frequency is at most sqrt(.25/50000) = 0.0022
    assert (freq - bon_probs(p, rewards, 3)).abs().max() < 0.01


def _continuous_like_toy(K: int = 5000):
    """K distinct responses with distinct rewards and uneven base probabilities (max p ≈ 3e-4)."""
    g = torch.Generator().manual_seed(1)
    p = torch.rand(K, generator=g, dtype=torch.float64) + 0.5
    return p / p.sum(), torch.randperm(K, generator=g).to(torch.float64)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_empirical_bon_kl_is_within_ten_percent_of_the_analytic_formula(n):
    p, rewards = _continuous_like_toy()
    g = torch.Generator().manual_seed(n)
    best = sample_best_of_n(p, rewards, n, 20_000, g)
    base = torch.multinomial(p, 20_000, replacement=True, generator=g)
    empirical = bon_kl_estimate(rewards[best], rewards[base], n)
    assert abs(empirical - bon_kl(n)) / bon_kl(n) < 0.10
    # and the exact KL of this discrete toy is the continuous formula to 0.1%
    assert abs(bon_kl_exact(p, rewards, n) - bon_kl(n)) / bon_kl(n) < 1e-3


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_on_a_coarse_discrete_base_the_formula_is_only_an_upper_bound(n):
    # four responses: many draws repeat, so best-of-n moves less than log n - (n-1)/n says
    # (Beirami et al. 2024); exact values: n = 2: 0.1578..., n = 16: 1.6177... vs 0.1931, 1.8351
    exact = bon_kl_exact(t(0.1, 0.2, 0.3, 0.4), t(3.0, 1.0, 2.0, 0.0), n)
    assert 0 < exact < bon_kl(n) * 0.95
