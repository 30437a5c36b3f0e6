"""One sampled token's forward for every row of a batch, without transformers' per-call machinery.

Why: on small models most of a decode step's time is not the matmuls but what a model's forward
does around them on every call -- building a 4-D mask from the 2-D one, position ids and cache
positions, the cache object's bookkeeping, output dataclasses, kwargs through four wrappers
per layer. Measured on bench/'s 1m GPT-2 (32 rows, one thread): ~11 ms per token through the
model's forward, ~8 ms here. Here the layers' own submodules (norms, projections, MLPs, rotary
embedding) are called in transformers' order (GPT-2's Conv1D projections as the `addmm` they run,
on 2-D rows: 0.935 of the sampling call's CPU time with the GELU change, bench/README.md), each
token's keys and values are written in place
into the StaticCache the prefill filled, and attention is the same `scaled_dot_product_attention`
call transformers makes, over a mask built once and extended by one column per token.

Built for GPT-2 and Llama-style decoders (Llama, Qwen2, Mistral; no sliding window) under
transformers' default `sdpa` attention; `decode_step` returns None for anything else (and for
options this path does not reproduce: cross-attention, another attention implementation,
GPT-2 projections that are not Conv1D), and
the sampler then calls the model's forward. tests/test_decode_step.py checks the logits against
the model's forward and the sampled tokens against the forward path's, GPT-2 and Llama."""

from __future__ import annotations

import sys
from typing import Callable

import torch
import torch.nn.functional as F

# (tokens (N,), cache column, positions (N,)) -> next-token logits (N, V)
Step = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]

LLAMA_STYLE = ("llama", "qwen2", "mistral")


def decode_step(model, cache, mask: torch.Tensor) -> Step | None:
    """A step function for `model` decoding into `cache` (a StaticCache its forward prefilled,
    rows already repeated), or None where this path does not apply. `mask`: (N, W) 0/1 of the
    cache's columns; the step marks its own column."""
    config = model.config
    if getattr(config, "_attn_implementation", None) != "sdpa" or \
            getattr(config, "sliding_window", None) is not None:
        return None
    # (N, 1, 1, W), additive: what scaled_dot_product_attention turns a boolean mask into on
    # every call (0 where attended, -inf elsewhere), made once here for every layer and token
    dtype = cache.layers[0].keys.dtype
    seen = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        mask == 0, float("-inf"))[:, None, None, :]
    if config.model_type == "gpt2" and not getattr(config, "add_cross_attention", False) \
            and _conv1d_projections(model):
        return _gpt2(model, cache, seen)
    if config.model_type in LLAMA_STYLE:
        return _llama_style(model, cache, seen)
    return None


def _attend(q: torch.Tensor, layer, seen: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, heads, 1, d) queries over the cache layer's keys and values -> (N, 1, heads · d).
    With grouped-query attention the query heads of a key/value head ride as its rows (what
    transformers does for one query token), so the cache is never repeated."""
    n, heads, _, d = q.shape
    q = q.reshape(n, layer.keys.shape[1], -1, d)
    out = F.scaled_dot_product_attention(q, layer.keys, layer.values, attn_mask=seen, scale=scale)
    return out.reshape(n, heads, 1, d).transpose(1, 2).reshape(n, 1, heads * d)


def _write(layer, column: int, k: torch.Tensor, v: torch.Tensor) -> None:
    layer.keys[:, :, column] = k[:, :, 0]
    layer.values[:, :, column] = v[:, :, 0]


def _gpt2(model, cache, seen: torch.Tensor) -> Step:
    """Rows as 2-D (N, d) states and GPT-2's Conv1D projections as the `addmm` they run (Conv1D
    reshapes to 2-D and back around it on every call); the LM head reads a (d, V) copy of its
    weight made once per sampling call (the (V, d) weight as the matmul's transposed operand is
    ~12% slower at 32 rows here)."""
    body = model.transformer
    head = _head(model)

    def step(tokens: torch.Tensor, column: int, positions: torch.Tensor) -> torch.Tensor:
        seen[:, :, :, column] = 0.0
        n = tokens.shape[0]
        h = body.wte(tokens) + body.wpe(positions)
        for block, layer in zip(body.h, cache.layers):
            attn, mlp = block.attn, block.mlp
            qkv = torch.addmm(attn.c_attn.bias, block.ln_1(h), attn.c_attn.weight)
            q, k, v = (x.view(n, -1, 1, attn.head_dim) for x in qkv.split(attn.split_size, 1))
            _write(layer, column, k, v)
            out = _attend(q, layer, seen, attn.scaling).view(n, -1)
            h = torch.addmm(attn.c_proj.bias, out, attn.c_proj.weight) + h
            up = mlp.act(torch.addmm(mlp.c_fc.bias, block.ln_2(h), mlp.c_fc.weight))
            h = h + torch.addmm(mlp.c_proj.bias, up, mlp.c_proj.weight)
        return head(body.ln_f(h))
    return step


def _conv1d_projections(model) -> bool:
    """GPT-2's projections are transformers' Conv1D (weight (in, out), run as addmm); by name,
    so a transformers that moves or replaces the class falls back instead of failing."""
    return all(type(layer).__name__ == "Conv1D" for block in model.transformer.h
               for layer in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc,
                             block.mlp.c_proj))


def _head(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """(N, d) -> (N, V) logits through the model's output embeddings."""
    lm_head = model.get_output_embeddings()
    if type(lm_head) is not torch.nn.Linear:
        return lm_head
    weight = lm_head.weight.t().contiguous()  # the policy's weights: fixed while it samples
    if lm_head.bias is None:
        return lambda x: torch.mm(x, weight)
    return lambda x: torch.addmm(lm_head.bias, x, weight)


def _llama_style(model, cache, seen: torch.Tensor) -> Step:
    body = model.model
    # the architecture's own rotary application (the same function its attention calls)
    rotate = sys.modules[type(body.layers[0].self_attn).__module__].apply_rotary_pos_emb

    def step(tokens: torch.Tensor, column: int, positions: torch.Tensor) -> torch.Tensor:
        seen[:, :, :, column] = 0.0
        n = tokens.shape[0]
        h = body.embed_tokens(tokens[:, None])
        cos, sin = body.rotary_emb(h, positions[:, None])
        for block, layer in zip(body.layers, cache.layers):
            attn = block.self_attn
            x = block.input_layernorm(h)
            q, k, v = (proj(x).view(n, 1, -1, attn.head_dim).transpose(1, 2)
                       for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            q, k = rotate(q, k, cos, sin)
            _write(layer, column, k, v)
            h = h + attn.o_proj(_attend(q, layer, seen, attn.scaling))
            h = h + block.mlp(block.post_attention_layernorm(h))
        return model.lm_head(body.norm(h))[:, -1]
    return step
