"""Sampled response texts for the lab's stages (feedback pairs, eval, the policy stage's eval
points, best-of-n): one response per prompt, through group_sampling's cache path (one prefill,
a preallocated cache, models/decode_step.py's lean per-token forward) where it applies, else
transformers' `generate`.

Why not `generate` everywhere: on the lab's small models most of a sampled token's time is
`generate`'s own per-token bookkeeping and its cache's concatenation; measured on the lab's SFT
model (256 prompts, 40 new tokens, this shared 2-core machine under load) the cache path took
about 0.8x `generate`'s CPU time at one thread and less at two. The distribution is the same
(`do_sample=True`, top_k 0, top_p 1 at the given temperature; tests/test_group_sampling.py); the
draws differ from generate's (another random stream), deterministic given `seed`."""

from __future__ import annotations

from .group_sampling import sample_k_per_prompt
from .tokenizer import decode_response, prompt_ids


def sample_responses(model, tokenizer, prompts: list[str], *, temperature: float,
                     max_new_tokens: int, seed: int, batch_size: int = 256) -> list[str]:
    """One sampled response text per prompt (repeat prompts for more), cut after its first
    <eos> or at max_new_tokens; batch b of `batch_size` prompts draws from seed·7919 + b (as
    generate.sample_response_ids seeds its batches), so a prompt's sample depends on its batch
    only, not on how many batches came before."""
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    out: list[list[int]] = []
    for b in range(0, len(ids), batch_size):
        out += sample_k_per_prompt(model, ids[b: b + batch_size], 1, temperature=temperature,
                                   max_new_tokens=max_new_tokens, seed=seed * 7919 + b,
                                   pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id)
    return [decode_response(tokenizer, row) for row in out]
