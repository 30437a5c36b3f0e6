"""What `rlxf grpo|rloo` measure every eval_every steps on the held-out prompts: mean reward
(combined and per source), each reward function's pass rate (share of completions it scored
above 0), KL to the reference (Monte-Carlo, Σ_t log π - log ref of the sampled completions),
completion length, per-token entropy of the policy, and the share of truncated completions.
Every point uses the same prompts and sampling seed (common random numbers), so the curve's
differences reflect the policy, not the draw."""

from __future__ import annotations

import math
from statistics import mean

import torch

from ..models.logprobs import response_batch
from ..rewards.combine import RewardSources, Scored


def nanmean(values) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return mean(kept) if kept else None


@torch.no_grad()
def response_entropy(model, prompts: list[list[int]], responses: list[list[int]],
                     pad_id: int) -> float:
    """Mean over response tokens of H(π(· | s_t)), one full forward per row."""
    ids, attention, response_mask = response_batch(prompts, responses, pad_id)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    logp = logits.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)              # (B, T-1): column j predicts j + 1
    mask = response_mask[:, 1:].to(entropy.dtype)
    return ((entropy * mask).sum() / mask.sum().clamp(min=1)).item()


def reward_metrics(sources: RewardSources, scored: Scored) -> dict:
    out = {"reward/mean": nanmean(scored.total)}
    for source, name in zip(sources.sources, sources.names):
        values = scored.per_source[name]
        out[f"reward/{name}"] = nanmean(values)
        if source.kind == "function":
            judged = [v for v in values if v is not None]
            out[f"pass_rate/{name}"] = (sum(v > 0 for v in judged) / len(judged)
                                        if judged else None)
    return out


def eval_point(sources: RewardSources, scored: Scored, responses: list[list[int]],
               truncated: list[bool], logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
               mask: torch.Tensor, entropy: float) -> dict:
    seq_kl = ((logprobs - ref_logprobs) * mask).sum(1)
    return {**reward_metrics(sources, scored), "kl/to_reference": seq_kl.mean().item(),
            "length/tokens": mean(len(r) for r in responses), "entropy/per_token": entropy,
            "truncated/share": mean(truncated)}
