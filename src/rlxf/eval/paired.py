"""Per-prompt values of two models sampled on the same prompts, summarised as each model's mean
and the policy − reference difference, each with a 95% bootstrap interval over prompts and n
(probes/stats.py's bootstrap: the prompt is the independent unit, its samples go with it), and
`within_noise` where the difference's interval spans zero."""

from __future__ import annotations

import math

from ..probes.stats import estimate


def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def prompt_means(values: list, k: int) -> list[float | None]:
    """Per-sample values (k consecutive samples per prompt) -> one mean per prompt (None where
    none of its samples has a value)."""
    out = []
    for i in range(0, len(values), k):
        kept = [float(v) for v in values[i: i + k] if _ok(v)]
        out.append(math.fsum(kept) / len(kept) if kept else None)
    return out


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of `texts` (lower-cased words): how varied a prompt's
    samples are among themselves; None when the texts hold no n-gram."""
    grams = [tuple(w[i: i + n]) for w in (t.lower().split() for t in texts)
             for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def within_noise(ci: list | None) -> bool | None:
    return None if ci is None else bool(ci[0] <= 0 <= ci[1])


def summary(values: list, seed: int) -> dict:
    """{value, ci95, n} of per-prompt values (None left out)."""
    return estimate([v for v in values if _ok(v)], seed=seed)


def difference(a: list, b: list, seed: int) -> dict:
    """a − b on the prompts where both have a value, paired by prompt, with within_noise."""
    iv = estimate([x - y for x, y in zip(a, b) if _ok(x) and _ok(y)], seed=seed)
    return {**iv, "within_noise": within_noise(iv["ci95"])}


def compare(per_prompt: dict[str, dict[str, list]], seed: int) -> dict:
    """{"models": {model: {metric: iv}}, "difference": {metric: iv}} from per-prompt values
    {model: {metric: [one per prompt]}}; a metric only the policy has (KL to the reference,
    which is 0 for the reference itself) is its own difference."""
    models = {m: {k: summary(v, seed) for k, v in metrics.items()}
              for m, metrics in per_prompt.items()}
    pol, ref = per_prompt["policy"], per_prompt.get("reference", {})
    diff = {}
    for k, v in pol.items():
        if k in ref:
            diff[k] = difference(v, ref[k], seed)
        else:
            iv = summary(v, seed)
            diff[k] = {**iv, "within_noise": within_noise(iv["ci95"])}
    return {"models": models, "difference": diff}
