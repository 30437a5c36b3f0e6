"""A reward model reads one hidden state per sequence: the final one, at its last token. So the
last transformer layer needs every position's keys and values, but its query, attention output
projection, MLP and final norm only at that one position. Per token, the last layer then costs
2d² (key, value) instead of 12d² (GPT-2): on a 6-layer model ~14% of the backbone's matmul work.
The position read is transformers' (the last token that is not pad: with pad == eos, the one
before a final <eos>), so a model trained here scores as `AutoModelForSequenceClassification`.

`pair_last_hidden` is `shared_prefix.pair_hidden(...).last` computed that way: the backbone runs
without its last layer and final norm (shared prompt prefix and all), then the last layer runs
here on the last positions only. Same function up to float rounding (tests/test_last_layer.py,
float64, values and gradients). GPT-2 only; other architectures take pair_hidden's full path."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .shared_prefix import pair_hidden, pair_states


def supports(backbone) -> bool:
    cfg = backbone.config
    return (cfg.model_type == "gpt2" and not cfg.add_cross_attention
            and len(backbone.h) >= 2)


@contextmanager
def without_last_layer(backbone):
    """The backbone, for the duration, without its last block and final norm (restored after)."""
    blocks, norm = backbone.h, backbone.ln_f
    backbone.h, backbone.ln_f = blocks[:-1], torch.nn.Identity()
    try:
        yield blocks[-1], norm
    finally:
        backbone.h, backbone.ln_f = blocks, norm


def gpt2_block_at_last(block, inputs: torch.Tensor, key_mask: torch.Tensor,
                       last: torch.Tensor) -> torch.Tensor:
    """GPT2Block's output at one position per row: `inputs` (N, T, d) the block's input at
    every position (keys and values), `key_mask` (N, T) the real positions, `last` (N,) the
    position read (its query attends causally: to the real positions up to and including it)."""
    causal = key_mask.bool() & (torch.arange(inputs.shape[1])[None, :] <= last[:, None])
    return gpt2_block_at(block, inputs, torch.arange(inputs.shape[0]), last, causal)


def gpt2_block_at(block, inputs: torch.Tensor, rows: torch.Tensor, at: torch.Tensor,
                  keys: torch.Tensor) -> torch.Tensor:
    """GPT2Block's output at M positions (row `rows[m]`, position `at[m]`) of `inputs` (N, T, d),
    the block's input at every position; `keys` (M, T) bool: the positions each one attends to."""
    attn = block.attn
    n, t, d = inputs.shape
    heads, hd = attn.num_heads, attn.head_dim
    w, bias = attn.c_attn.weight, attn.c_attn.bias  # Conv1D: x @ w + bias, w (d, 3d) = [q|k|v]
    x = block.ln_1(inputs)
    kv = torch.addmm(bias[d:], x.reshape(-1, d), w[:, d:]).view(n, t, 2, heads, hd)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, H, T, hd)
    q = torch.addmm(bias[:d], x[rows, at], w[:, :d]).view(len(rows), heads, 1, hd)
    o = F.scaled_dot_product_attention(q, k[rows], v[rows], attn_mask=keys[:, None, None, :],
                                       scale=attn.scaling)
    h = inputs[rows, at] + attn.c_proj(o.reshape(len(rows), d))
    return h + block.mlp(block.ln_2(h))


def pair_last_hidden(backbone, prompts: list[list[int]], a: list[list[int]],
                     b: list[list[int]], pad_id: int) -> torch.Tensor:
    """(2B, d): the final hidden state where the reward head reads each sequence
    (`GroupStates.scored_index`: transformers' last non-pad token), rows [a..., b...]."""
    if not supports(backbone):
        return pair_hidden(backbone, prompts, a, b, pad_id).last
    with without_last_layer(backbone) as (block, norm):
        s = pair_states(backbone, prompts, a, b, pad_id)
    # Keys: each row's prompt (shared by its two responses) then its response.
    inputs, _, key_mask = s.sequence_layout()
    last = s.scored_index(pad_id)
    return s.to_pair_order(norm(gpt2_block_at_last(block, inputs, key_mask, last)))
