"""Sampling responses from a causal LM with Hugging Face `generate`."""

from __future__ import annotations

import torch

from .tokenizer import decode_response, prompt_ids


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], *, temperature: float,
                     max_new_tokens: int, seed: int, batch_size: int = 256) -> list[str]:
    """One sampled response per prompt (repeat prompts for more). Deterministic given `seed`:
    each batch reseeds the global generator from (seed, batch index)."""
    model.eval()
    out: list[str] = []
    for b in range(0, len(prompts), batch_size):
        chunk = [prompt_ids(tokenizer, p) for p in prompts[b: b + batch_size]]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(chunk):  # left padding: every prompt ends where generation starts
            ids[i, width - len(c):] = torch.tensor(c)
            mask[i, width - len(c):] = 1
        torch.manual_seed(seed * 7919 + b)
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                             temperature=temperature, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        out.extend(decode_response(tokenizer, row[width:].tolist()) for row in gen)
    return out
