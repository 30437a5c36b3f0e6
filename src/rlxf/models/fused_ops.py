"""Function-preserving kernel swaps made before training.

GPT-2's `gelu_new` (and `gelu_fast`) are the tanh approximation of GELU written as six Python-level
tensor ops (pow, mul, add, tanh, ...), each a pass over the MLP's 4d-wide activations, forward and
backward. torch has the same function as one kernel (`F.gelu(x, approximate="tanh")`,
transformers' `GELUTanh`): equal up to float rounding (tests/test_last_layer.py checks it in
float64). Measured in bench/: ~5% of a 5M GPT-2's training step. The model's config and weights
are untouched, so a saved model reloads with its own activation."""

from __future__ import annotations

import torch
from transformers.activations import FastGELUActivation, GELUTanh, NewGELUActivation

SAME_AS_GELU_TANH = (NewGELUActivation, FastGELUActivation)


def fuse_activations(model: torch.nn.Module) -> int:
    """Replace, in place, every activation module that computes tanh-GELU in Python by torch's
    fused kernel; returns how many were replaced."""
    swaps = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, SAME_AS_GELU_TANH)]
    for parent, name in swaps:
        setattr(parent, name, GELUTanh())
    return len(swaps)
