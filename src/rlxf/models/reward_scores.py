"""What a reward model says: every head's reward on each (prompt, response), read from the last
token of one forward; training (train/reward.py) and scoring (ensembles, headed models, reward
sources) share it."""

from __future__ import annotations

import torch

from .batching import device_of
from .logprobs import response_batch


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Rewards under bf16 autocast come out of the head in bf16; losses see fp32 (float64 kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def head_rewards(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                 ) -> torch.Tensor:
    """(N, K) rewards of every head, one forward over N sequences."""
    ids, mask, _ = response_batch(prompts, responses, pad_id)
    device = device_of(model)
    return at_least_fp32(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits)


@torch.no_grad()
def score_heads(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                batch_size: int = 256) -> list[list[float]]:
    """[response][head] rewards."""
    model.eval()
    out: list[list[float]] = []
    for b in range(0, len(prompts), batch_size):
        out.extend(head_rewards(model, prompts[b: b + batch_size], responses[b: b + batch_size],
                                pad_id).tolist())
    return out


def score(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
          batch_size: int = 256) -> list[float]:
    return [row[0] for row in score_heads(model, prompts, responses, pad_id, batch_size)]
