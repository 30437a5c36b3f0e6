"""A best-of-n sweep (`rlxf sweep` over `[sweep] bon_n`) pooled over seeds: per n, gold utility
of best-of-n minus SFT's on the same eval prompts, and the measured KL(best-of-n || SFT) against
the analytic log n − (n−1)/n, each with its 95% interval (bootstrap over seeds, then eval
prompts: rlxf.audit.intervals) and n. Read from each member's policy/bon_samples.jsonl (stage
policy writes it for algorithm bon: SFT's samples at step 0, best-of-n's at step 1), rescored by
the seed's gold judge; a sweep from before that file has no intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..rundir import read_jsonl
from .intervals import Bootstrap, Clusters, difference, ratio
from .pooled import load_world
from .surface import score_samples
from .uncertainty import prompt_n

# stages/policy.py's BON_SAMPLES_FILE, not imported (the audit stays below stages/ and torch-free);
# tests/test_bon_sweep_intervals.py keeps the two equal
SAMPLES_FILE = "bon_samples.jsonl"
SIDES = {0: "sft", 1: "bon"}  # eval point (step) -> whose samples


def analytic_kl(n: int) -> float:
    """log n − (n−1)/n: KL(best-of-n || base) for a base with no repeated responses (train/bon.py
    bon_kl; an upper bound for a discrete base)."""
    return math.log(n) - (n - 1) / n


def sweep_clusters(dirs: list[Path]) -> tuple[Clusters, list[int]]:
    """Per (seed, eval prompt): for each member n, sums of gold utility and counts of SFT's and
    best-of-n's samples (`nN/sft/...`, `nN/bon/...`) and best-of-n's KL (`nN/bon/kl`); and the
    n values found."""
    clusters, values = Clusters(), set()
    for i, d in enumerate(dirs):
        listing = d / "sweep" / "sweep.json"
        if not listing.exists() or not (d / "world").exists():
            continue
        world = load_world(d)
        by_prompt: dict[str, dict[str, float]] = {}
        for member in json.loads(listing.read_text())["members"]:
            path = d / member["dir"] / "policy" / SAMPLES_FILE
            if not path.exists():
                continue
            values.add(member["value"])
            for row in read_jsonl(path):
                scored = score_samples([row], world)[0]
                if not scored or row.get("step") not in SIDES:
                    continue  # a prompt this seed's world does not know
                sums = by_prompt.setdefault(row["prompt_id"], {})
                key = f"n{member['value']}/{SIDES[row['step']]}"
                for col, v in (("n", 1.0), ("gold", scored[0]["gold"]),
                               ("kl", row.get("kl_to_sft") or 0.0)):
                    sums[f"{key}/{col}"] = sums.get(f"{key}/{col}", 0.0) + v
        for pid in sorted(by_prompt):
            clusters.add(i, by_prompt[pid])
    return clusters, sorted(values)


def sweep_intervals(clusters: Clusters, values: list[int]) -> dict:
    """{points: [{n, gold_change, kl_measured, kl_analytic, relative_error}], largest: the point
    at the largest n}; gold_change (best-of-n − SFT) and relative_error (measured / analytic − 1)
    carry `within_noise`. {} without clusters."""
    boot = Bootstrap.of(clusters)
    if boot is None:
        return {}
    m = clusters.matrix()
    points = []
    for v in values:
        if f"n{v}/bon/n" not in clusters.columns or v < 2:
            continue
        n = prompt_n(clusters, m, f"n{v}/bon/n")
        gold = difference(ratio(f"n{v}/bon/gold", f"n{v}/bon/n"),
                          ratio(f"n{v}/sft/gold", f"n{v}/sft/n"))
        kl = ratio(f"n{v}/bon/kl", f"n{v}/bon/n")
        analytic = analytic_kl(v)
        points.append({"n": v, "gold_change": boot.interval(gold, change=True, n=n),
                       "kl_measured": boot.interval(kl, n=n), "kl_analytic": analytic,
                       "relative_error": boot.interval(lambda t, kl=kl, a=analytic: kl(t) / a - 1,
                                                       change=True, n=n)})
    return {"points": points, "largest": points[-1]} if points else {}


def attach_bon_intervals(sweep: dict, dirs: list[Path]) -> None:
    """sweep["intervals"] for a best-of-n sweep (null with notes.intervals when its members have
    no per-prompt samples)."""
    sweep["intervals"] = sweep_intervals(*sweep_clusters(dirs)) or None
    if sweep["intervals"] is None:
        sweep["notes"]["intervals"] = (f"no member has policy/{SAMPLES_FILE} (a sweep from "
                                       "before it was written): no per-prompt numbers to draw from")
