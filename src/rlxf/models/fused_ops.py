"""Function-preserving kernel swaps made before training.

GPT-2's `gelu_new` (and `gelu_fast`, and transformers' `GELUTanh`) are the tanh approximation of
GELU, 0.5·x·(1 + tanh(z)) with z = √(2/π)·(x + 0.044715·x³); `gelu_new` is written as six
Python-level tensor ops, each a pass over the MLP's 4d-wide activations. The same function is
x·sigmoid(2z) (0.5·(1 + tanh(z)) = sigmoid(2z)): on this project's CPU torch's sigmoid costs
~2.5 ns an element and its tanh ~6 (torch's one-kernel tanh-GELU ~8.5), so
`SigmoidFormGELU` computes the forward as x·sigmoid(2z) (five cheap in-place ops and one
sigmoid: ~1.9x faster than the one kernel, measured in bench/README.md) and its backward with
torch's own tanh-GELU derivative kernel. Equal up to float rounding (tests/test_last_layer.py
checks values and gradients against `gelu_new` in float64). The model's config and weights are
untouched, so a saved model reloads with its own activation."""

from __future__ import annotations

import math

import torch
from transformers.activations import FastGELUActivation, GELUTanh, NewGELUActivation

SAME_AS_GELU_TANH = (NewGELUActivation, FastGELUActivation, GELUTanh)

_LINEAR = 2 * math.sqrt(2 / math.pi)  # 2z = x·(_LINEAR + _CUBIC·x²)
_CUBIC = _LINEAR * 0.044715


def _sigmoid_form(x: torch.Tensor) -> torch.Tensor:
    out = x * x
    return out.mul_(_CUBIC).add_(_LINEAR).mul_(x).sigmoid_().mul_(x)


class _SigmoidFormGELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _sigmoid_form(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.ops.aten.gelu_backward(grad, x, approximate="tanh")


class SigmoidFormGELU(torch.nn.Module):
    """tanh-GELU as x·sigmoid(2z); bf16 and other dtypes take torch's kernel, which computes in
    float32 inside (five ops in bf16 would round five times)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float32, torch.float64):
            return torch.nn.functional.gelu(x, approximate="tanh")
        if torch.is_grad_enabled() and x.requires_grad:
            return _SigmoidFormGELU.apply(x)
        return _sigmoid_form(x)


def fuse_activations(model: torch.nn.Module) -> int:
    """Replace, in place, every tanh-GELU activation module by `SigmoidFormGELU`; returns how
    many were replaced."""
    swaps = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, SAME_AS_GELU_TANH)]
    for parent, name in swaps:
        setattr(parent, name, SigmoidFormGELU())
    return len(swaps)
