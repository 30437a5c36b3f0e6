"""Log-probabilities of responses under a causal LM."""

from __future__ import annotations

import torch

from .batching import pad_right
from .shared_prefix import applies_to, group_token_logprobs


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
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 up, float64 kept
    return torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2)


def sequence_logprobs(model, ids, mask, response_mask) -> torch.Tensor:
    """(B,): summed log-prob of each response given its prompt."""
    return (token_logprobs(model, ids, mask) * response_mask[:, 1:]).sum(-1)


def group_response_logprobs(model, prompts: list[list[int]], responses: list[list[int]],
                            pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token log-probs (k·B, Tr), response mask (k·B, Tr)) of k responses per prompt,
    grouped by prompt (prompt i's are rows i·k ... i·k + k - 1), aligned to the responses:
    column t is response token t, 0 on padding. Where the shared-prefix path is tested
    (`shared_prefix.applies_to`) each prompt runs once with the LM head on response positions
    only; otherwise (peft-wrapped, checkpointed, several processes) the full forward of every
    prompt + response, gathered into the same layout."""
    if applies_to(model):
        return group_token_logprobs(model, prompts, responses, pad_id)
    k = len(responses) // len(prompts)
    repeated = [p for p in prompts for _ in range(k)]
    ids, attention, _ = response_batch(repeated, responses, pad_id)
    full = token_logprobs(model, ids, attention)  # (B, T-1): column j predicts token j + 1
    r_mask = pad_right(responses, pad_id)[1]
    # response token t of row i sits at position len(prompt) + t, predicted by column len - 1 + t
    starts = torch.tensor([len(p) - 1 for p in repeated])
    cols = (starts[:, None] + torch.arange(r_mask.shape[1])).clamp(max=full.shape[1] - 1)
    return full.gather(1, cols) * r_mask, r_mask


def response_log_softmax(model, prompts: list[list[int]], responses: list[list[int]],
                         pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(· | s_t) over the whole vocabulary (B, Tr, V), response mask (B, Tr)) at every
    response position t of each (prompt, response) row, one full forward per row, aligned as
    `group_response_logprobs` aligns them (column t predicts response token t; padding rows are
    garbage under mask 0). Float32 at least: bf16 logits are promoted, float64 kept."""
    device = next(model.parameters()).device
    ids, attention, _ = response_batch(prompts, responses, pad_id)
    logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1]
    r_mask = pad_right(responses, pad_id)[1].to(device)
    starts = torch.tensor([len(p) - 1 for p in prompts], device=device)
    cols = (starts[:, None] + torch.arange(r_mask.shape[1], device=device)).clamp(
        max=logits.shape[1] - 1)
    # response positions first: a long prompt's (T, V) log-softmax is never materialised
    logits = logits.gather(1, cols[:, :, None].expand(-1, -1, logits.shape[2]))
    return logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1), r_mask
