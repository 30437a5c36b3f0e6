"""Per-response KL(π ‖ π_ref), entropy and log-probability from exact per-token distributions.

The KL of a response is the per-token full-vocabulary KL summed along it,
    Σ_t KL(π(· | s_t) ‖ π_ref(· | s_t)),   s_t = prompt + the response's first t tokens,
a Rao–Blackwellised estimator of the sequence KL: on responses sampled from π its expectation is
KL(π(y | x) ‖ π_ref(y | x)) (the chain rule), every term is ≥ 0, and it is exactly 0 when the two
models give the same distributions. Beside it the plain Monte-Carlo estimate
Σ_t log π(y_t | s_t) − log π_ref(y_t | s_t) of the sampled tokens (what the lab's eval stage and
`rlxf grpo`'s eval points report): also unbiased, but it can be negative and has more variance.
Both are KL of the models' own (temperature-1) distributions, so they estimate the KL only when
the responses were sampled at temperature 1 (docs/EVAL.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.logprobs import response_log_softmax


@dataclass(frozen=True)
class ResponseStats:
    """One response's sums over its tokens."""
    tokens: int
    logp: float                 # Σ_t log π(y_t | s_t)
    entropy: float              # Σ_t H(π(· | s_t))
    kl: float | None = None     # Σ_t KL(π(· | s_t) ‖ π_ref(· | s_t)) (Rao–Blackwellised)
    kl_sampled: float | None = None  # Σ_t log π(y_t | s_t) − log π_ref(y_t | s_t)


def _kl_terms(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """(..., V) -> (...): Σ_v p_v (log p_v − log q_v), a token of p = 0 contributing 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


@torch.no_grad()
def response_stats(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                   reference=None, batch_size: int = 8) -> list[ResponseStats]:
    """ResponseStats of each (prompt, response) row under `model` (one prompt per response),
    with the KL to `reference` when one is given; `batch_size` rows per forward, so the
    (rows, tokens, vocabulary) distributions of a large vocabulary stay small."""
    out: list[ResponseStats] = []
    for b in range(0, len(responses), batch_size):
        p, r = prompts[b: b + batch_size], responses[b: b + batch_size]
        logp, mask = response_log_softmax(model, p, r, pad_id)
        mask = mask.to(logp.dtype)
        ids = torch.zeros(mask.shape, dtype=torch.long, device=logp.device)
        for i, row in enumerate(r):
            ids[i, : len(row)] = torch.tensor(row)
        sampled = logp.gather(-1, ids[:, :, None])[:, :, 0]
        entropy = -(torch.where(logp.exp() > 0, logp.exp() * logp, torch.zeros_like(logp))
                    .sum(-1))
        rows = {"logp": (sampled * mask).sum(1), "entropy": (entropy * mask).sum(1)}
        if reference is not None:
            logq, _ = response_log_softmax(reference, p, r, pad_id)
            logq = logq.to(logp.dtype)
            rows["kl"] = (_kl_terms(logp, logq) * mask).sum(1)
            rows["kl_sampled"] = ((sampled - logq.gather(-1, ids[:, :, None])[:, :, 0])
                                  * mask).sum(1)
        values = {k: v.tolist() for k, v in rows.items()}
        for i, row in enumerate(r):
            out.append(ResponseStats(len(row), **{k: v[i] for k, v in values.items()}))
    return out
