"""Sampling responses from a causal LM with Hugging Face `generate`."""

from __future__ import annotations

import torch


def cut_at_stop(rows: list[list[int]], stops: list[int]) -> list[list[int]]:
    """Each row up to and including its first stop token (all of it if it has none)."""
    out = []
    for row in rows:
        end = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
        out.append(row[: end + 1])
    return out


@torch.no_grad()
def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), left-padded: every prompt ends where generation starts."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return ids, mask


def sample_response_ids(model, prompts: list[list[int]], *, temperature: float,
                        max_new_tokens: int, seed: int, pad_id: int, eos_id: int | list[int],
                        batch_size: int = 256, top_p: float = 1.0) -> list[list[int]]:
    """One sampled response per prompt (token ids), cut after its first <eos> (kept, as it was
    sampled; `eos_id` may list several stop tokens) or at max_new_tokens. Deterministic given
    `seed`: each batch reseeds the global generator from (seed, batch index)."""
    stops = eos_id if isinstance(eos_id, list) else [eos_id]
    model.eval()
    out: list[list[int]] = []
    for b in range(0, len(prompts), batch_size):
        chunk = prompts[b: b + batch_size]
        ids, mask = left_padded(chunk, pad_id)
        width = ids.shape[1]
        torch.manual_seed(seed * 7919 + b)
        device = next(model.parameters()).device
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             do_sample=True,
                             temperature=temperature, top_k=0, top_p=top_p,
                             max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                             eos_token_id=eos_id)
        out += cut_at_stop(gen[:, width:].tolist(), stops)
    return out
