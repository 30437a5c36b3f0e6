"""log π(target | state): the LM head and the log-softmax at the target token as one autograd node.

Why: the plain way (`log_softmax(head(states)).gather(targets)`) writes the whole (rows, vocab)
log-softmax, and its backward first scatters the gradient into a zero (rows, vocab) tensor, then
runs log-softmax's backward, which exponentiates every logit again. Here the forward keeps
exp(logit - max) from its own log-sum-exp and the backward is one pass over it
(∂ log p_t / ∂ logit_j = [j = t] - p_j); the head's two matmuls are the same as autograd's.
The forward computes what log-softmax computes (logit_t - max - log Σ exp(logit - max)).
Measured in bench/ on the 1m GPT-2, one thread: see bench/README.md (GRPO from files).
tests/test_head_logprobs.py checks values and gradients against log-softmax in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def head_token_logprobs(head: torch.nn.Module, states: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
    """(..., ) log-softmax of `head(states)` (states (..., d)) at `targets` (...,), float32 at
    least (bf16 logits are promoted). `head` is a Linear (the model's output embeddings)."""
    weight, bias = head.weight, getattr(head, "bias", None)
    if type(head) is not torch.nn.Linear or states.dtype not in (torch.float32, torch.float64) \
            or weight.dtype != states.dtype or torch.is_autocast_enabled(states.device.type):
        # bf16 weights, autocast, a head that is not a plain Linear: the plain way
        logits = head(states)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return torch.gather(logits.log_softmax(-1), -1, targets[..., None]).squeeze(-1)
    return _HeadTokenLogprob.apply(states, weight, bias, targets)


class _HeadTokenLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, states, weight, bias, targets):
        logits = F.linear(states, weight, bias)
        target_logit = logits.gather(-1, targets[..., None]).squeeze(-1)
        top = logits.amax(-1, keepdim=True)
        scaled = logits.sub_(top).exp_()  # in place: the logits are not needed again
        total = scaled.sum(-1)
        ctx.save_for_backward(states, weight, targets, scaled, total)
        ctx.has_bias = bias is not None
        return target_logit - top.squeeze(-1) - total.log()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        states, weight, targets, scaled, total = ctx.saved_tensors
        # d/d logit_j = grad · ([j = target] - softmax_j)
        d_logits = scaled * (-grad / total)[..., None]
        d_logits.scatter_add_(-1, targets[..., None], grad[..., None])
        flat = d_logits.reshape(-1, d_logits.shape[-1])
        d_states = d_logits @ weight if ctx.needs_input_grad[0] else None
        d_weight = flat.t() @ states.reshape(-1, states.shape[-1]) \
            if ctx.needs_input_grad[1] else None
        d_bias = flat.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_states, d_weight, d_bias, None
