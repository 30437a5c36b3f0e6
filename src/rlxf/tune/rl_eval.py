"""What `rlxf grpo|rloo` measure every eval_every steps on the held-out prompts: mean reward
(combined and per source), each reward function's pass rate (share of completions it scored
above 0), KL to the reference (Monte-Carlo, Σ_t log π - log ref of the sampled completions),
completion length, per-token entropy of the policy, and the share of truncated completions.
Every point uses the same prompts and sampling seed (common random numbers), so the curve's
differences reflect the policy, not the draw."""

from __future__ import annotations

import math
import random
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


BOOTSTRAP_DRAWS = 2000


def _percentile_ci(values: list[float], seed: int = 0) -> list[float] | None:
    """95% percentile-bootstrap interval of the mean of `values` (resampled with replacement,
    seeded: the same history gives the same interval)."""
    if len(values) < 2:
        return None
    rng, n = random.Random(seed), len(values)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(BOOTSTRAP_DRAWS))
    return [means[int(0.025 * BOOTSTRAP_DRAWS)], means[int(0.975 * BOOTSTRAP_DRAWS) - 1]]


def prompt_level(total: list[float], k: int) -> dict:
    """An eval point's held-out reward by prompt (`total` holds k completions per prompt, grouped
    by prompt): each prompt's mean (None where nothing was scored), their mean's 95% interval
    over prompts (the prompts are the sampled unit; a prompt's k completions are not
    independent) and the counts."""
    per_prompt = [nanmean(total[i: i + k]) for i in range(0, len(total), k)]
    scored = [v for v in per_prompt if v is not None]
    return {"reward/per_prompt": per_prompt, "reward/ci95": _percentile_ci(scored),
            "reward/n_prompts": len(scored), "reward/samples_per_prompt": k}


def heldout_change(first: dict, last: dict) -> dict | None:
    """The held-out reward's change from the first eval point to the last: both means with their
    intervals, and the mean of the per-prompt differences (the same prompts and sampling seed at
    every point, so the difference is paired) with its 95% bootstrap interval over prompts;
    `beyond_noise` when that interval excludes 0."""
    a, b = first.get("reward/per_prompt"), last.get("reward/per_prompt")
    if not a or not b or len(a) != len(b):
        return None
    diffs = [y - x for x, y in zip(a, b) if x is not None and y is not None]
    if not diffs:
        return None
    ci = _percentile_ci(diffs)
    return {"first": first.get("reward/mean"), "first_ci95": first.get("reward/ci95"),
            "last": last.get("reward/mean"), "last_ci95": last.get("reward/ci95"),
            "change": mean(diffs), "change_ci95": ci, "n_prompts": len(diffs),
            "samples_per_prompt": last.get("reward/samples_per_prompt"),
            "beyond_noise": bool(ci and (ci[0] > 0 or ci[1] < 0))}
