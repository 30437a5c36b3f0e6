"""Losses against hand-derived values in float64 (and against the closed forms they encode)."""

import math

import torch

from rlxf.train.losses import bradley_terry_loss, dpo_loss


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_bradley_terry_matches_hand_computed_value():
    # -log σ(2 - 1) = log(1 + e^-1) = 0.31326168751822286; -log σ(0 - 3) = log(1 + e^3)
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(3.0))) / 2
    got = bradley_terry_loss(t(2.0, 0.0), t(1.0, 3.0))
    assert abs(got.item() - expected) < 1e-12
    assert abs(math.log1p(math.exp(-1.0)) - 0.31326168751822286) < 1e-15


def test_bradley_terry_margin_shifts_the_logit():
    got = bradley_terry_loss(t(2.0), t(1.0), margin=0.5)
    assert abs(got.item() - math.log1p(math.exp(-0.5))) < 1e-12


def test_dpo_matches_hand_computed_value_and_rewards():
    beta = 0.1
    pc, pr, rc, rr = t(-5.0, -7.0), t(-9.0, -6.0), t(-6.0, -7.5), t(-8.0, -5.0)
    # logits: β[(−5+6) − (−9+8)] = 0.2 ; β[(−7+7.5) − (−6+5)] = 0.15
    expected = (math.log1p(math.exp(-0.2)) + math.log1p(math.exp(-0.15))) / 2
    loss, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta)
    assert abs(loss.item() - expected) < 1e-12
    assert torch.allclose(r_c, t(0.1, 0.05), atol=1e-12)
    assert torch.allclose(r_r, t(-0.1, -0.1), atol=1e-12)


def test_dpo_at_the_reference_is_log_two_and_its_gradient_favours_chosen():
    pc = t(-3.0).requires_grad_()
    pr = t(-4.0).requires_grad_()
    loss, _, _ = dpo_loss(pc, pr, t(-3.0), t(-4.0), beta=0.5)
    loss.backward()
    assert abs(loss.item() - math.log(2)) < 1e-12
    # d/dπ_c of -log σ(β(π_c - π_r)) at 0 is -β/2
    assert abs(pc.grad.item() + 0.25) < 1e-12 and abs(pr.grad.item() - 0.25) < 1e-12
