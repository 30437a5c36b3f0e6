"""Process vs outcome supervision pooled over seeds: best-of-n with the process reward model
(PRM) against the outcome one (ORM) at the largest n the stage measured, each statistic with its
95% interval (bootstrap over seeds, then held-out questions: rlxf.audit.intervals) and n, and
PRM − ORM with `within_noise`. Read from process/bon_prompts.jsonl of each seed (one row of
sums per held-out question, written by stage `process`); runs from before that file have none."""

from __future__ import annotations

from pathlib import Path

from ..rundir import read_jsonl
from .intervals import Bootstrap, Clusters, difference, ratio
from .uncertainty import prompt_n

# stages/process.py's PER_PROMPT_FILE, not imported: the audit stays light (no torch) and below
# stages/; tests/test_process_intervals.py keeps the two equal
PER_PROMPT_FILE = "bon_prompts.jsonl"
# statistic -> (numerator, denominator) columns of one selector at one n
STATISTICS = {"accuracy/final": ("final", "draws"), "accuracy/steps": ("steps_right", "steps"),
              "rate/right_answer_wrong_reasoning": ("rawr", "draws")}
SELECTORS = ("orm", "prm")


def process_clusters(dirs: list[Path]) -> Clusters:
    """Per (seed, held-out question): the sums of process/bon_prompts.jsonl."""
    clusters = Clusters()
    for i, d in enumerate(dirs):
        path = d / "process" / PER_PROMPT_FILE
        if path.exists():
            for row in read_jsonl(path):
                clusters.add(i, {k: float(v) for k, v in row.items() if k != "prompt_id"})
    return clusters


def _column(selector: str, n: int, col: str) -> str:
    return col if col == "draws" else f"{selector}/n{n}/{col}"


def process_intervals(clusters: Clusters, n: int) -> dict:
    """{best_of, STATISTIC: {orm, prm, prm_minus_orm}}, each an interval; {} without clusters."""
    boot = Bootstrap.of(clusters)
    if boot is None:
        return {}
    m = clusters.matrix()
    out: dict = {"best_of": n}
    for name, (num, den) in STATISTICS.items():
        stat = {s: ratio(_column(s, n, num), _column(s, n, den)) for s in SELECTORS}
        ns = {s: prompt_n(clusters, m, _column(s, n, den)) for s in SELECTORS}
        out[name] = {s: boot.interval(stat[s], n=ns[s]) for s in SELECTORS}
        out[name]["prm_minus_orm"] = boot.interval(difference(stat["prm"], stat["orm"]),
                                                   change=True, n=ns["prm"])
    return out
