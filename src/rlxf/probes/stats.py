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
