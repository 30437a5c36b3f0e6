"""Rates and means with their n and a seeded 95% percentile-bootstrap interval: every number
the probe battery reports comes as {"value", "ci95", "n"} so a reader sees how sure it is."""

from __future__ import annotations

import numpy as np

N_BOOT = 2000  # resamples; seeded, so a report built twice is byte-identical


def estimate(values: list[float], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The mean of `values` (one per independent unit: a question, a prompt, a pair), its 95%
    percentile-bootstrap interval (resampling the units with replacement) and n. With no
    values, value and ci95 are None rather than a made-up 0."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"value": None, "ci95": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"value": float(x.mean()), "ci95": [float(lo), float(hi)], "n": int(x.size)}


def rate(flags: list[bool], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The share of True flags, with its interval and n (see `estimate`)."""
    return estimate([float(f) for f in flags], n_boot, seed)


def ratio_estimate(num: list[float], den: list[float], minus: tuple[list, list] | None = None,
                   n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Σ num / Σ den over independent units (e.g. prompts, each with its count of events and of
    trials), or with `minus` = (num_b, den_b) on the same units the paired difference of two such
    ratios; its 95% percentile-bootstrap interval resampling the units (draws where a
    denominator totals 0 left out) and n, the number of units. value None when undefined."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (num, den, *(minus or ()))]
    n = arrays[0].size

    def stat(idx):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = arrays[0][idx].sum(-1) / arrays[1][idx].sum(-1)
            return r - arrays[2][idx].sum(-1) / arrays[3][idx].sum(-1) if minus else r
    value = float(stat(np.arange(n))) if n else float("nan")
    if not np.isfinite(value):
        return {"value": None, "ci95": None, "n": n}
    boot = stat(np.random.default_rng(seed).integers(0, n, size=(n_boot, n)))
    boot = boot[np.isfinite(boot)]
    ci = [float(x) for x in np.percentile(boot, [2.5, 97.5])] if n >= 2 and boot.size else None
    return {"value": value, "ci95": ci, "n": n}
