"""Sampling k responses per prompt for group RL (GRPO, RLOO), without transformers' `generate`.

Why: on small models much of `generate`'s time is its own per-token bookkeeping, and its default
cache grows by concatenation (a copy of every layer's keys and values at every token). Here each
distinct prompt is prefilled once and its cache repeated k times; the cache is preallocated
(transformers' StaticCache, written in place); after the prefill each token runs through
models/decode_step.py's lean forward where it applies (GPT-2, Llama, Qwen2, Mistral: the same
logits without the model's per-call bookkeeping), else the model's forward; a token is drawn by
inverting the CDF with one uniform per row. The distribution is generate's `do_sample=True, top_k=0, top_p=1` at the same
temperature; `temperature=0` is greedy, which tests/test_group_sampling.py compares token for
token with generate's greedy output.

A seed may be one int (one generator for the whole batch) or one int per prompt (`prompt_seeds`):
then each prompt's group draws from its own generator, so a prompt's samples do not depend on
which other prompts share its batch -- two processes each sampling half of a step's prompts
draw what one process draws for all of them (train/group_rl.py, tune/rl.py)."""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import StaticCache

from .decode_step import decode_step
from .generate import cut_at_stop, left_padded, sample_response_ids
from .kv_cache import cache_kwargs
from .shared_prefix import applies_to


Seed = int | Sequence[int]


def prompt_seeds(base: int, positions: Sequence[int]) -> list[int]:
    """One seed per prompt from a step's seed and each prompt's position in the step's global
    batch: the same prompt slot draws the same stream on whichever process samples it."""
    return [base * 1_000_003 + p for p in positions]


def _uniforms(rows: int, generator: torch.Generator | list[torch.Generator] | UniformStream
              ) -> torch.Tensor:
    """(rows, 1) uniforms: from one generator, or consecutive equal blocks of rows each from
    its own generator (a prompt's group), or the next of a `UniformStream`'s."""
    if isinstance(generator, UniformStream):
        return generator.next(rows)
    if isinstance(generator, torch.Generator):
        return torch.rand(rows, 1, generator=generator)
    block = rows // len(generator)
    return torch.cat([torch.rand(block, 1, generator=g) for g in generator])


class UniformStream:
    """The uniforms of `calls` consecutive `_uniforms(rows, generator)` calls, drawn up front:
    one `torch.rand` per generator for all of them instead of one per generator per token.
    The same numbers in the same order (a CPU generator's stream is sequential:
    tests/test_group_sampling.py checks it), so a seed draws the same tokens."""

    def __init__(self, rows: int, generator: torch.Generator | list[torch.Generator],
                 calls: int):
        if isinstance(generator, torch.Generator):
            self._values = torch.rand(calls, rows, 1, generator=generator)
        else:
            block = rows // len(generator)
            self._values = torch.cat([torch.rand(calls, block, 1, generator=g)
                                      for g in generator], 1)
        self._next = 0

    def next(self, rows: int) -> torch.Tensor:
        if self._next == len(self._values) or rows != self._values.shape[1]:
            raise ValueError(f"UniformStream: call {self._next + 1} for {rows} rows; drawn for "
                             f"{len(self._values)} calls of {self._values.shape[1]}")
        self._next += 1
        return self._values[self._next - 1]


def draw(logits: torch.Tensor, temperature: float,
         generator: torch.Generator | list[torch.Generator] | UniformStream,
         top_p: float = 1.0) -> torch.Tensor:
    """(N,) one token per row of (N, V) logits: softmax(logits / temperature) sampled by inverse
    CDF (a token of probability 0 is never drawn); argmax when temperature is 0. With top_p < 1
    only the most probable tokens whose probabilities reach top_p can be drawn (nucleus).
    `generator`: one for all rows, or a list that splits the rows into equal consecutive blocks
    (a prompt's group each), or a `UniformStream` drawn from either."""
    if temperature == 0:
        return logits.argmax(-1)
    # x / 1.0 is x: at temperature 1 the division is skipped (the same probabilities)
    probs = torch.softmax(logits.float() / temperature if temperature != 1 else logits.float(),
                          -1)
    if top_p < 1.0:
        ranked, order = probs.sort(-1, descending=True)
        # a token is outside the nucleus when the tokens ranked above it already reach top_p
        outside = (ranked.cumsum(-1) - ranked) >= top_p
        probs = probs.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside), 0.0)
    cdf = probs.cumsum(-1)
    # the uniforms come from a CPU generator on every device: a seed draws the same tokens
    u = _uniforms(cdf.shape[0], generator).to(cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=cdf.shape[1] - 1)


def _repeat_rows(cache: StaticCache, k: int) -> None:
    """Each row of a prefilled cache becomes k consecutive rows."""
    for layer in cache.layers:
        layer.keys = layer.keys.repeat_interleave(k, 0)
        layer.values = layer.values.repeat_interleave(k, 0)
        layer.batch_size = layer.keys.shape[0]


def sample_groups(model, prompts: list[list[int]], k: int, *, temperature: float,
                  max_new_tokens: int, seed: Seed, pad_id: int, eos_id: int | list[int],
                  top_p: float = 1.0) -> list[list[int]]:
    """k sampled responses per prompt (token ids), grouped by prompt (prompt i's are rows
    i·k ... i·k + k - 1), each cut after its first <eos> (kept) or at max_new_tokens; `eos_id`
    may list several stop tokens (a chat template's end of turn and <eos>).
    Deterministic given `seed` (one int, or one per prompt), on the model's device and in the
    model's own dtype: a training engine's mixed-precision autocast is switched off here,
    because under it a Llama's keys leave the rotary embedding in fp32 and its values in bf16,
    which one preallocated cache cannot hold (and sampling needs no autocast: nothing is
    backpropagated)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, enabled=False):
        return _sample_groups(model, prompts, k, device, temperature=temperature,
                              max_new_tokens=max_new_tokens, seed=seed, pad_id=pad_id,
                              eos_id=eos_id, top_p=top_p)


def _sample_groups(model, prompts, k, device, *, temperature, max_new_tokens, seed, pad_id,
                   eos_id, top_p) -> list[list[int]]:
    stops = torch.tensor(eos_id if isinstance(eos_id, list) else [eos_id], device=device)
    model.eval()
    n, width = len(prompts), max(map(len, prompts))
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros(n, width + max_new_tokens, dtype=torch.long)  # the cache's full width
    for i, p in enumerate(prompts):  # left padding: every prompt ends where sampling starts
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p): width] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, :width].cumsum(1) - 1).clamp(min=0)
    cache = StaticCache(config=model.config, max_cache_len=width + max_new_tokens)
    with_cache = cache_kwargs(model, cache)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   **with_cache).logits[:, -1]
    _repeat_rows(cache, k)
    logits, mask = logits.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
    next_position = mask.sum(1)
    generator = torch.Generator().manual_seed(seed) if isinstance(seed, int) else \
        [torch.Generator().manual_seed(s) for s in _per_prompt(seed, n)]
    if temperature != 0:  # greedy draws no uniforms
        generator = UniformStream(n * k, generator, max_new_tokens)
    done = torch.zeros(n * k, dtype=torch.bool, device=device)
    tokens: list[torch.Tensor] = []
    lean = decode_step(model, cache, mask)  # None: the model's own forward (models/decode_step.py)
    for t in range(max_new_tokens):
        token = draw(logits, temperature, generator, top_p).masked_fill(done, pad_id)
        tokens.append(token)
        done |= torch.isin(token, stops)
        if done.all() or t == max_new_tokens - 1:
            break
        if lean is not None:
            logits = lean(token, width + t, next_position + t)
            continue
        mask[:, width + t] = 1
        logits = model(input_ids=token[:, None], attention_mask=mask,
                       position_ids=(next_position + t)[:, None], use_cache=True,
                       **with_cache).logits[:, -1]
    return cut_at_stop(torch.stack(tokens, 1).tolist(), stops.tolist())


def _per_prompt(seeds: Sequence[int], n: int) -> list[int]:
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} prompts: give one seed, or one per prompt")
    return list(seeds)


def sample_k_per_prompt(model, prompts: list[list[int]], k: int, *, temperature: float,
                        max_new_tokens: int, seed: Seed, pad_id: int,
                        eos_id: int | list[int], top_p: float = 1.0) -> list[list[int]]:
    """k responses per prompt, grouped as `sample_groups` returns them: by `sample_groups` for
    the models whose KV-cache path is tested (`shared_prefix.applies_to`: plain GPT-2, Llama,
    Qwen2, Mistral, Gemma), else (peft-wrapped, checkpointed, other architectures) by
    transformers' `generate` on each prompt repeated k times (with one seed per prompt: one
    batched `generate` whose tokens each prompt's own generator draws). Both are deterministic
    given `seed`; they draw differently."""
    kwargs = dict(temperature=temperature, max_new_tokens=max_new_tokens, pad_id=pad_id,
                  eos_id=eos_id, top_p=top_p)
    if applies_to(model):
        return sample_groups(model, prompts, k, seed=seed, **kwargs)
    if isinstance(seed, int):
        return sample_response_ids(model, [p for p in prompts for _ in range(k)], seed=seed,
                                   **kwargs)
    return _generate_per_prompt(model, prompts, k, _per_prompt(seed, len(prompts)), **kwargs)


def _generate_per_prompt(model, prompts, k, seeds, *, temperature, max_new_tokens, pad_id,
                         eos_id, top_p) -> list[list[int]]:
    """transformers' `generate` with one generator per prompt: `draw` picks each token inside
    a logits processor that leaves only that token, which greedy search then takes (generate's
    own sampling would draw the whole batch from the global generator). Only the temperature
    and top_p given apply, as on the cache path (not the model's generation_config)."""
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
    generators = [torch.Generator().manual_seed(s) for s in seeds]

    class DrawPerPrompt(LogitsProcessor):
        def __call__(self, input_ids, scores):
            token = draw(scores, temperature, generators, top_p)
            return torch.full_like(scores, -float("inf")).scatter_(1, token[:, None], 0.0)

    stops = eos_id if isinstance(eos_id, list) else [eos_id]
    repeated = [p for p in prompts for _ in range(k)]
    ids, mask = left_padded(repeated, pad_id)
    device = next(model.parameters()).device
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens,
                              pad_token_id=pad_id, eos_token_id=stops)
    model.eval()
    with torch.inference_mode():
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             generation_config=config,
                             logits_processor=LogitsProcessorList([DrawPerPrompt()]))
    return cut_at_stop(out[:, ids.shape[1]:].tolist(), stops)
