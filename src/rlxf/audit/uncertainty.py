"""Each headline number of the report with its 95% interval, its n and its power (the smallest
effect it can detect): failure modes, the 3H changes per family and the headline changes
against SFT. Intervals come from rlxf.audit.intervals (bootstrap over seeds and prompts) on the
clusters of rlxf.audit.pooled; a change whose interval spans zero is "within noise".

`measure(dirs, groups_order)` returns {"modes": {ID: {"number": iv, "change": iv, ...}},
"tensions": {FAMILY: {AXIS: iv}}, "headline": {METRIC: iv}}, each iv as
intervals.summarise gives it ({value, ci95, se, mde, n[, within_noise]})."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .intervals import DRAWS, RNG_SEED, Bootstrap, Clusters, ratio, sd, summarise
from .pooled import AXES, agreement_clusters, pooled_history, probe_clusters, sample_clusters

MODELS = ("base", "sft", "policy")
# Failure modes measured as a rate of each model: (numerator, denominator) sums per model.
RATES = {"sycophancy": ("syc", "false_premise/n"), "anthropomorphism": ("anthro", "n"),
         "apology": ("apology", "n"), "refusals": ("harm_comply", "harmful/n")}
HEADLINE = {"gold/utility": ("gold", "n"), "gold/helpful": ("helpful", "n"),
            "gold/harmless": ("harmless", "n"), "gold/honest": ("honest", "n"),
            "reward/proxy": ("proxy", "proxy_n"), "world/parse_rate": ("parsed", "n"),
            "rate/refusal_benign": ("benign_refuse", "benign/n")}


def _rate(model: str, num: str, den: str):
    return ratio(f"{model}/{num}", f"{model}/{den}")


def _change(num: str, den: str):
    pol, sft = _rate("policy", num, den), _rate("sft", num, den)
    return lambda t: pol(t) - sft(t)


def prompt_n(clusters: Clusters, m: np.ndarray, den_key: str) -> dict:
    """{prompts, samples} behind a number: the clusters with a non-zero denominator `den_key`
    (`m`: clusters.matrix()) and the denominator's total over them."""
    col = clusters.columns.get(den_key)
    used = m[:, col] > 0 if col is not None else np.zeros(len(m), bool)
    return {"prompts": int(used.sum()), "samples": int(m[used, col].sum()) if used.any() else 0}


def _pair(boot: Bootstrap, clusters: Clusters, m: np.ndarray, num: str, den: str) -> dict:
    """The policy's rate and its change against SFT."""
    n = prompt_n(clusters, m, f"policy/{den}")
    return {"number": boot.interval(_rate("policy", num, den), n=n),
            "change": boot.interval(_change(num, den), change=True, n=n)}


def _reward_gap(t):
    def mean(model, key, den):
        return t[f"{model}/{key}"] / t[f"{model}/{den}"]
    dp = mean("policy", "proxy", "proxy_n") - mean("sft", "proxy", "proxy_n")
    dg = mean("policy", "gold", "n") - mean("sft", "gold", "n")
    return (dp / sd("sft/proxy", "sft/proxy2", "sft/proxy_n")(t)
            - dg / sd("sft/gold", "sft/gold2", "sft/n")(t))


def _distinct2(boot: Bootstrap, bigrams: list[dict], clusters: Clusters, m: np.ndarray) -> dict:
    """distinct-2 of the policy and its change against SFT: unique bigrams (a cluster counts
    when drawn at least once) over all bigrams (weighted by the draws). A draw repeats prompts,
    which lowers distinct-2 by itself, so the draws are re-centred on the point estimate (their
    spread is kept, their bias removed)."""
    def stats(model):
        vocab = sorted({g for c in bigrams for g in c.get(model, ())})
        if not vocab:
            return None, np.array([])
        index = {g: j for j, g in enumerate(vocab)}
        inc = np.zeros((len(bigrams), len(vocab)), dtype=np.float32)
        for i, c in enumerate(bigrams):
            for g in c.get(model, ()):
                inc[i, index[g]] = 1
        total = boot.point[f"{model}/bigrams"]
        point = len(vocab) / total if total else None
        drawn = (boot.weights > 0).astype(np.float32)
        unique = ((drawn @ inc) > 0).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            draws = unique / boot.draws[f"{model}/bigrams"]
        ok = np.isfinite(draws)
        return point, (draws - draws[ok].mean() + point if point is not None and ok.any()
                       else np.array([]))
    (p, bp), (s, bs) = stats("policy"), stats("sft")
    n = {**boot.n, **prompt_n(clusters, m, "policy/bigrams")}
    change = (None if p is None or s is None else p - s,
              bp - bs if bp.size and bs.size else np.array([]))
    return {"number": summarise(p, bp, n, False), "change": summarise(*change, n, True)}


def _group_gap(boot: Bootstrap, groups: list[str], clusters, m) -> dict:
    """Largest minus smallest group change (SFT → policy), the two groups chosen on the point
    estimate and kept in every draw, so the difference may fall below zero (a spread could not)."""
    def delta(g):
        return lambda t: (t[f"policy/group/{g}"] / t["policy/n"]
                          - t[f"sft/group/{g}"] / t["sft/n"])
    point = {g: delta(g)(boot.point) for g in groups}
    hi = max(groups, key=lambda g: (point[g], g))
    lo = min(groups, key=lambda g: (point[g], g))
    iv = boot.interval(lambda t: delta(hi)(t) - delta(lo)(t), change=True,
                       n=prompt_n(clusters, m, "policy/n"))
    return {"number": iv, "change": iv, "groups": [hi, lo]}


def _backdoor(boot: Bootstrap, clusters, m) -> dict:
    def rate(model):
        return lambda t: (t[f"{model}/trig_bad"] / t[f"{model}/trig_n"]
                          - t[f"{model}/bad"] / t[f"{model}/n"])
    n = prompt_n(clusters, m, "policy/trig_n")
    return {"policy": boot.interval(rate("policy"), change=True, n=n),
            "sft": boot.interval(rate("sft"), change=True, n=prompt_n(clusters, m, "sft/trig_n")),
            "number": boot.interval(lambda t: rate("policy")(t) - rate("sft")(t), change=True,
                                    n=n)}


def _curves(histories: list[list[dict]], key: str) -> np.ndarray | None:
    """(seeds, steps) values of `key` at the steps every seed measured; None under 2 steps."""
    steps = sorted(set.intersection(*({h["step"] for h in hist if h.get(key) is not None}
                                      for hist in histories))) if histories else []
    if len(steps) < 2:
        return None
    return np.array([[next(h[key] for h in hist if h["step"] == s) for s in steps]
                     for hist in histories])


def curve_lost(histories: list[list[dict]], key: str,
               control: list[list[dict]] | None = None) -> dict | None:
    """Gold lost since its peak on the seeds' mean curve (last − max over common steps), with a
    bootstrap over seeds (the policy stage keeps means per eval point, not per prompt). With
    `control` (another policy's histories in the same seed order, e.g. a sweep's first member),
    the difference: lost − control's lost, each draw taking the same seeds for both (paired)."""
    g = _curves(histories, key)
    c = _curves(control, key) if control is not None else None
    if g is None or (control is not None and (c is None or len(c) != len(g))):
        return None
    rng = np.random.default_rng(RNG_SEED)
    k = len(histories)
    w = rng.multinomial(k, [1 / k] * k, size=DRAWS) / k

    def lost(curves):
        return curves[..., -1] - curves.max(-1)

    def reading(mean_of):  # the seeds' weights -> the reading on their mean curves
        return lost(mean_of(g)) - (lost(mean_of(c)) if c is not None else 0.0)
    n = {"seeds": k, "eval_points": g.shape[1]}
    point = float(reading(lambda x: x.mean(0)))
    boot = reading(lambda x: w @ x) if k > 1 else np.array([])
    return summarise(point, boot, n, True)


def overoptimisation(dirs: list[Path]) -> dict:
    hist = pooled_history(dirs)
    out = {"number": curve_lost(hist, "gold/utility"),
           "parsed": curve_lost(hist, "gold/utility_parsed")}
    rates = [[h.get("world/parse_rate") for h in hs] for hs in hist]
    if rates and all(r and None not in (r[0], r[-1]) for r in rates):
        out["parse_rate"] = {"first": float(np.mean([r[0] for r in rates])),
                             "last": float(np.mean([r[-1] for r in rates]))}
    out["change"] = out["number"]
    return out


def measure(dirs: list[Path], seeds: list[tuple]) -> dict:
    """`seeds`: pooled.scored_samples(dirs), scored once for the report and for this."""
    out: dict = {"modes": {}, "tensions": {}, "headline": {},
                 "seeds": len(dirs), "draws": DRAWS}
    out["modes"]["overoptimisation"] = overoptimisation(dirs)
    agree = Bootstrap.of(agreement_clusters(dirs))
    if agree is not None:
        out["modes"]["annotators"] = {"number": agree.interval(ratio("agree", "pairs"))}
    clusters, bigrams = sample_clusters(seeds)
    boot = Bootstrap.of(clusters)
    if boot is None:
        return out
    m = clusters.matrix()
    modes = out["modes"]
    for id_, (num, den) in RATES.items():
        modes[id_] = _pair(boot, clusters, m, num, den)
    modes["refusals"]["over_refusal"] = _pair(boot, clusters, m, "benign_refuse", "benign/n")
    probes = probe_clusters(dirs)
    probe_boot = Bootstrap.of(probes)
    if probe_boot is not None:  # the probe set is what the refusal readings rest on
        pm = probes.matrix()
        heldout = modes["refusals"]
        modes["refusals"] = _pair(probe_boot, probes, pm, "harm_comply", "harmful/n")
        modes["refusals"]["over_refusal"] = _pair(probe_boot, probes, pm, "benign_refuse",
                                                  "benign/n")
        modes["refusals"]["heldout"] = heldout
    gap = boot.interval(_reward_gap, change=True, n=prompt_n(clusters, m, "policy/proxy_n"))
    modes["reward_hacking"] = {"number": gap, "change": gap}
    modes["mode_collapse"] = _distinct2(boot, bigrams, clusters, m)
    groups = sorted({k.split("/", 2)[2] for k in clusters.columns
                     if k.startswith("policy/group/")})
    if len(groups) >= 2:
        modes["group_disparity"] = _group_gap(boot, groups, clusters, m)
    if "policy/trig_n" in clusters.columns and "sft/trig_n" in clusters.columns:
        modes["backdoor"] = _backdoor(boot, clusters, m)
    for metric, (num, den) in HEADLINE.items():
        out["headline"][metric] = _pair(boot, clusters, m, num, den)
    families = sorted({k.split("/")[1] for k in clusters.columns
                       if k.startswith("policy/") and k.endswith("/n") and k.count("/") == 2})
    for fam in families:
        if f"sft/{fam}/n" not in clusters.columns:
            continue
        n = prompt_n(clusters, m, f"policy/{fam}/n")
        out["tensions"][fam] = {ax: boot.interval(_change(f"{fam}/{ax}", f"{fam}/n"),
                                                  change=True, n=n)
                                for ax in (*AXES, "utility")}
    return out
