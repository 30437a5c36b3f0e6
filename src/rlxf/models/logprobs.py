"""Log-probabilities of responses under a causal LM."""

from __future__ import annotations

import torch

from ..train.loop import pad_right


def response_batch(prompts: list[list[int]], responses: list[list[int]], pad_id: int):
    """Right-padded (ids, attention_mask, response_mask), each (B, T). response_mask marks the
    positions whose token belongs to the response."""
    seqs = [p + r for p, r in zip(prompts, responses)]
    ids, mask = pad_right(seqs, pad_id)
    resp = torch.zeros_like(mask)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        resp[i, len(p): len(p) + len(r)] = 1
    return ids, mask, resp


def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T-1): log π(ids[:, t+1] | ids[:, :t+1])."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    return torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2)


def sequence_logprobs(model, ids, mask, response_mask) -> torch.Tensor:
    """(B,): summed log-prob of each response given its prompt."""
    return (token_logprobs(model, ids, mask) * response_mask[:, 1:]).sum(-1)
