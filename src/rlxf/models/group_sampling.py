"""Sampling k responses per prompt for group RL (GRPO, RLOO), without transformers' `generate`.

Why: on small models much of `generate`'s time is its own per-token bookkeeping, and its default
cache grows by concatenation (a copy of every layer's keys and values at every token). Here each
distinct prompt is prefilled once and its cache repeated k times; the cache is preallocated
(transformers' StaticCache, written in place); a token is drawn by inverting the CDF with one
uniform per row. The distribution is generate's `do_sample=True, top_k=0, top_p=1` at the same
temperature; `temperature=0` is greedy, which tests/test_group_sampling.py compares token for
token with generate's greedy output."""

from __future__ import annotations

import torch
from transformers import StaticCache

from .generate import sample_response_ids
from .kv_cache import cache_kwargs
from .shared_prefix import applies_to


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(N,) one token per row of (N, V) logits: softmax(logits / temperature) sampled by inverse
    CDF (a token of probability 0 is never drawn); argmax when temperature is 0."""
    if temperature == 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits.float() / temperature, -1).cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=cdf.shape[1] - 1)


def _repeat_rows(cache: StaticCache, k: int) -> None:
    """Each row of a prefilled cache becomes k consecutive rows."""
    for layer in cache.layers:
        layer.keys = layer.keys.repeat_interleave(k, 0)
        layer.values = layer.values.repeat_interleave(k, 0)
        layer.batch_size = layer.keys.shape[0]


@torch.inference_mode()  # the samples leave as lists: no autograd bookkeeping needed
def sample_groups(model, prompts: list[list[int]], k: int, *, temperature: float,
                  max_new_tokens: int, seed: int, pad_id: int, eos_id: int) -> list[list[int]]:
    """k sampled responses per prompt (token ids), grouped by prompt (prompt i's are rows
    i·k ... i·k + k - 1), each cut after its first <eos> (kept) or at max_new_tokens.
    Deterministic given `seed`."""
    model.eval()
    n, width = len(prompts), max(map(len, prompts))
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros(n, width + max_new_tokens, dtype=torch.long)  # the cache's full width
    for i, p in enumerate(prompts):  # left padding: every prompt ends where sampling starts
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p): width] = 1
    positions = (mask[:, :width].cumsum(1) - 1).clamp(min=0)
    cache = StaticCache(config=model.config, max_cache_len=width + max_new_tokens)
    with_cache = cache_kwargs(model, cache)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   **with_cache).logits[:, -1]
    _repeat_rows(cache, k)
    logits, mask = logits.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
    next_position = mask.sum(1)
    generator = torch.Generator().manual_seed(seed)
    done = torch.zeros(n * k, dtype=torch.bool)
    tokens: list[torch.Tensor] = []
    for t in range(max_new_tokens):
        token = draw(logits, temperature, generator).masked_fill(done, pad_id)
        tokens.append(token)
        done |= token == eos_id
        if done.all() or t == max_new_tokens - 1:
            break
        mask[:, width + t] = 1
        logits = model(input_ids=token[:, None], attention_mask=mask,
                       position_ids=(next_position + t)[:, None], use_cache=True,
                       **with_cache).logits[:, -1]
    rows = torch.stack(tokens, 1).tolist()
    return [row[: row.index(eos_id) + 1] if eos_id in row else row for row in rows]


def sample_k_per_prompt(model, prompts: list[list[int]], k: int, *, temperature: float,
                        max_new_tokens: int, seed: int, pad_id: int,
                        eos_id: int) -> list[list[int]]:
    """k responses per prompt, grouped as `sample_groups` returns them: by `sample_groups` for
    the models whose KV-cache path is tested (`shared_prefix.applies_to`: plain GPT-2 and
    Llama), else (peft-wrapped, checkpointed, other architectures) by transformers' `generate` on
    each prompt repeated k times. Both are deterministic given `seed`; they draw differently."""
    kwargs = dict(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                  pad_id=pad_id, eos_id=eos_id)
    if applies_to(model):
        return sample_groups(model, prompts, k, **kwargs)
    return sample_response_ids(model, [p for p in prompts for _ in range(k)], **kwargs)
