"""95% intervals for the report's headline numbers: a percentile bootstrap over seeds and
prompts (hierarchical: draw seeds with replacement, then prompts with replacement within each
drawn seed), with the smallest effect each number can detect beside it.

The data are clusters (one per seed and prompt, or per seed and compared item) of additive sums
(counts, sums, sums of squares), so every statistic is a function of column totals: a bootstrap
draw is a weight per cluster and its totals one matrix product. Statistics take a `Totals`
(column name -> total, a float for the point estimate or an array over draws) and return the
number; a draw where it is undefined (0/0) is left out. Pure numpy: no files, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DRAWS = 2000
RNG_SEED = 0  # fixed: the same run directory gives the same interval, byte for byte
# Smallest detectable effect at 80% power, two-sided 5% test: (z_0.975 + z_0.80) * SE.
POWER_Z = 1.959964 + 0.841621
WITHIN_NOISE = "within noise"


@dataclass
class Clusters:
    """Rows of additive sums, each tagged with the seed (index) it came from."""
    columns: dict[str, int] = field(default_factory=dict)
    rows: list[dict[str, float]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def add(self, seed: int, sums: dict[str, float]) -> None:
        for k in sums:
            self.columns.setdefault(k, len(self.columns))
        self.rows.append(sums)
        self.seeds.append(seed)

    def matrix(self) -> np.ndarray:
        m = np.zeros((len(self.rows), len(self.columns)))
        for i, row in enumerate(self.rows):
            for k, v in row.items():
                m[i, self.columns[k]] = v
        return m

    def counts(self) -> dict:
        """{seeds, clusters per seed (min..max)} for the report's n."""
        per = [self.seeds.count(s) for s in sorted(set(self.seeds))]
        return {"seeds": len(per), "clusters": len(self.rows),
                "clusters_per_seed": [min(per), max(per)] if per else None}


class Totals:
    """Column totals, by name: a missing column totals zero."""

    def __init__(self, values: np.ndarray, columns: dict[str, int]):
        self.values, self.columns = values, columns

    def __getitem__(self, key: str):
        i = self.columns.get(key)
        if i is None:
            return np.zeros(self.values.shape[:-1]) if self.values.ndim > 1 else np.float64(0.0)
        return self.values[..., i]


def draw_weights(seeds: list[int], draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, clusters) weights of a two-level bootstrap: seeds with replacement, then within
    each drawn seed its clusters with replacement (a seed drawn c times contributes c * P draws
    of its P clusters: a sum of c multinomials with equal probabilities is one multinomial)."""
    ids = sorted(set(seeds))
    members = {s: [i for i, x in enumerate(seeds) if x == s] for s in ids}
    w = np.zeros((draws, len(seeds)))
    seed_counts = rng.multinomial(len(ids), [1 / len(ids)] * len(ids), size=draws)
    for j, s in enumerate(ids):
        idx = members[s]
        for b in np.nonzero(seed_counts[:, j])[0]:
            w[b, idx] = rng.multinomial(seed_counts[b, j] * len(idx), [1 / len(idx)] * len(idx))
    return w


@dataclass
class Bootstrap:
    """Point totals and bootstrap totals of one set of clusters."""
    point: Totals
    draws: Totals
    n: dict
    weights: np.ndarray  # (draws, clusters): for statistics that are not sums (distinct-2)

    @classmethod
    def of(cls, clusters: Clusters, draws: int = DRAWS) -> "Bootstrap | None":
        if not clusters.rows:
            return None
        m = clusters.matrix()
        w = draw_weights(clusters.seeds, draws, np.random.default_rng(RNG_SEED))
        return cls(Totals(m.sum(0), clusters.columns), Totals(w @ m, clusters.columns),
                   clusters.counts(), w)

    def interval(self, stat: Callable[[Totals], object], change: bool = False,
                 n: dict | None = None) -> dict:
        """{value, ci95, se, mde, n} (and `within_noise` for a change): ci95 the 2.5 and 97.5
        percentiles of the statistic over the draws where it is defined."""
        with np.errstate(divide="ignore", invalid="ignore"):
            value = _float(stat(self.point))
            boot = np.asarray(stat(self.draws), dtype=float)
        return summarise(value, boot, {**self.n, **(n or {})}, change)


def _settle(x):
    """Round away the last bits of floating-point summation: the order of a matrix product's
    sums differs between BLAS builds and thread counts, and the report must be byte-stable
    (a constant statistic must not print a standard error of 1e-16)."""
    return np.round(x, 12) + 0.0


def summarise(value: float | None, boot: np.ndarray, n: dict, change: bool) -> dict:
    boot = _settle(boot[np.isfinite(boot)]) if boot.size else boot
    value = None if value is None else float(_settle(value))
    out: dict = {"value": value, "ci95": None, "se": None, "mde": None, "n": n}
    one_cluster = n.get("prompts", 2) < 2 and n.get("seeds", 1) < 2  # nothing to resample
    if value is not None and boot.size >= 2 and not one_cluster:
        lo, hi = _settle(np.percentile(boot, [2.5, 97.5]))
        se = float(_settle(boot.std(ddof=1)))
        out.update(ci95=[float(lo), float(hi)], se=se, mde=POWER_Z * se)
    if change:
        out["within_noise"] = spans_zero(out["ci95"])
    return out


def spans_zero(ci: list | None) -> bool | None:
    return None if ci is None else bool(ci[0] <= 0 <= ci[1])


def ratio(num: str, den: str) -> Callable[[Totals], object]:
    return lambda t: t[num] / t[den]


def difference(a: Callable[[Totals], object], b: Callable[[Totals], object]):
    return lambda t: a(t) - b(t)


def sd(total: str, squares: str, n: str) -> Callable[[Totals], object]:
    """Population standard deviation from a sum, a sum of squares and a count."""
    def spread(t):
        var = t[squares] / t[n] - (t[total] / t[n]) ** 2
        return np.where(var > 1e-12, np.sqrt(np.maximum(var, 0.0)), np.nan)  # 0: no spread
    return spread


def _float(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def reading(iv: dict, fmt: Callable[[float], str], unit: str = "") -> str:
    """'+0.02 [−0.01, +0.05], within noise' / '… (interval excludes zero)' for a change."""
    if iv.get("value") is None:
        return "not measured"
    text = fmt(iv["value"]) + unit
    if iv.get("ci95") is None:
        return text + " (no interval: too few prompts or seeds)"
    lo, hi = iv["ci95"]
    text += f" [{fmt(lo)}, {fmt(hi)}]"
    if "within_noise" in iv:
        text += f", {WITHIN_NOISE}" if iv["within_noise"] else ", beyond noise"
    return text
