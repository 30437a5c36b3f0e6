"""models/head_logprobs.py: the LM head + log-softmax at the target as one autograd node gives
the values and gradients of `log_softmax(head(states)).gather(targets)` (float64, 1e-12), with
and without a bias, on 2-D and 3-D states; bf16, autocast and non-Linear heads take the plain
way."""

from __future__ import annotations

import pytest
import torch

from rlxf.models.head_logprobs import _HeadTokenLogprob, head_token_logprobs


def _case(bias: bool, shape: tuple[int, ...], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(8, 40, bias=bias).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(40, 8, generator=g, dtype=torch.float64))
        if bias:
            head.bias.copy_(torch.randn(40, generator=g, dtype=torch.float64))
    states = torch.randn(*shape, 8, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 40, shape, generator=g)
    weights = torch.randn(shape, generator=g, dtype=torch.float64)
    return head, states, targets, weights


def _grads(head, states, lp, weights):
    params = [states, *head.parameters()]
    return torch.autograd.grad((lp * weights).sum(), params)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(6,), (3, 5)])
def test_values_and_gradients_equal_log_softmax_gather(bias, shape):
    head, states, targets, weights = _case(bias, shape)
    got = head_token_logprobs(head, states, targets)
    want = head(states).log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for a, b in zip(_grads(head, states, got, weights), _grads(head, states, want, weights)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_gradcheck():
    """The backward against finite differences of the forward (torch's gradcheck)."""
    head, states, targets, _ = _case(True, (2, 3), seed=1)
    w, b = head.weight.detach().requires_grad_(), head.bias.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda s, w_, b_: _HeadTokenLogprob.apply(s, w_, b_, targets),
                                    (states, w, b))


def test_extreme_logits_stay_finite():
    """A logit far above the rest: the target's log-prob is ~0 and the others' ~ -gap, as
    log-softmax gives them (no overflow from exp)."""
    head, states, targets, _ = _case(False, (4,))
    with torch.no_grad():
        head.weight.mul_(1e3)
    got = head_token_logprobs(head, states, targets)
    want = head(states).log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-9)


def test_bf16_and_autocast_take_the_plain_way_in_float32():
    head, states, targets, _ = _case(False, (5,))
    head_bf16, s_bf16 = head.to(torch.bfloat16), states.detach().to(torch.bfloat16)
    got = head_token_logprobs(head_bf16, s_bf16, targets)
    assert got.dtype == torch.float32
    want = head_bf16(s_bf16).float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.equal(got, want)
    head32, s32 = head.float(), states.detach().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = head_token_logprobs(head32, s32, targets)
        want = head32(s32).float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.equal(got, want)

