"""One batched generation: the choices of every request in a batch decoded together, sharing each
forward pass, each with its own sampling settings, length limit and seed.

Prompts are left-padded (every prompt ends where decoding starts) with an attention mask that
hides the padding and position ids that count from each prompt's own first token, so a padded
row computes what it would alone (tests/test_serve_batching.py compares greedy replies token for
token with plain transformers' `generate` on each prompt alone). Identical prompts (a request's n
choices) are prefilled once and their KV cache rows repeated. A choice leaves the batch when it
emits a stop token, reaches its max_tokens or is cancelled (a stop string, a client gone); its
cache rows are dropped so the rest decode narrower. The batch's settings do not need to agree:
the forward pass does not depend on them, and each row's token is drawn from its own logits with
its own temperature, top_p and generator."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import torch

from ..models.group_sampling import draw
from ..models.kv_cache import cache_kwargs, returned_cache


@dataclass(eq=False)
class Choice:
    """One completion being generated. The decoder puts each new token id on `tokens`, then None
    when the choice is over (or the exception that ended the batch)."""
    prompt: list[int]
    max_tokens: int  # already capped so that prompt + max_tokens fits the context
    temperature: float  # 0: greedy
    top_p: float
    seed: int
    tokens: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


@torch.inference_mode()
def decode(model, choices: list[Choice], *, stop_ids: list[int], pad_id: int) -> None:
    """Generate every choice to its end, streaming tokens onto each choice's queue."""
    device = model.device
    # 1. prefill each distinct prompt once, left-padded
    distinct: dict[tuple, int] = {}
    rows = torch.tensor([distinct.setdefault(tuple(c.prompt), len(distinct)) for c in choices],
                        device=device)
    prompts = list(distinct)
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = returned_cache(out)
    # 2. one row per choice (a prompt's n choices share its prefilled cache)
    if len(prompts) < len(choices):  # rows are numbered in order: only repeats need a gather
        cache.batch_select_indices(rows)
    logits, mask = out.logits[:, -1][rows], mask[rows]
    next_position = mask.sum(1)
    generators = [torch.Generator().manual_seed(c.seed) for c in choices]
    stops = set(stop_ids)
    active = list(range(len(choices)))
    counts = [0] * len(choices)
    # 3. decode: draw one token per active row, retire finished rows, one forward for the rest
    while True:
        tokens = _next_tokens(logits, [choices[i] for i in active], [generators[i] for i in active])
        keep = []
        for j, (i, token) in enumerate(zip(active, tokens)):
            choice = choices[i]
            choice.tokens.put(token)
            counts[i] += 1
            if token in stops or counts[i] >= choice.max_tokens or choice.cancelled.is_set():
                choice.tokens.put(None)
            else:
                keep.append(j)
        if not keep:
            return
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_position = mask[index], next_position[index]
            active = [active[j] for j in keep]
            tokens = [tokens[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], 1)
        logits = model(input_ids=torch.tensor(tokens, device=device)[:, None],
                       attention_mask=mask, position_ids=next_position[:, None], use_cache=True,
                       **cache_kwargs(model, cache)).logits[:, -1]
        next_position = next_position + 1


def _next_tokens(logits: torch.Tensor, choices: list[Choice],
                 generators: list[torch.Generator]) -> list[int]:
    """(N, V) logits -> one token per row: argmax for greedy rows; for sampled rows a draw from
    the row's own generator on the CPU (the same token for the same seed on any device and in
    any batch)."""
    if all(c.temperature == 0 for c in choices):
        return logits.argmax(-1).tolist()
    rows = logits.float().cpu()
    return [int(draw(rows[j: j + 1], c.temperature, g, c.top_p))
            for j, (c, g) in enumerate(zip(choices, generators))]
