"""The seeds of a run and what pools them: which run directories hold a seed (RUN itself and
RUN/seeds/seed=K/, written by `rlxf run --seeds N`), their eval metrics averaged, and the
clusters of per-prompt sums (rlxf.audit.intervals) that the report's intervals are drawn from.

Each seed has its own world (knowledge base and held-out split come from the seed), so a
cluster is one (seed, prompt) pair scored by that seed's gold judge; the samples of base, SFT
and policy on the same prompt share a cluster, so a change against SFT is a paired difference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import mean

from ..eval.metrics import BAD_UTILITY
from ..rundir import read_jsonl
from ..world.kb import KnowledgeBase
from ..world.prompts import Prompt
from .intervals import Clusters
from .surface import score_samples

SEEDS_DIR = "seeds"
SEEDS_FILE = "seeds.json"
AXES = ("helpful", "harmless", "honest")
TRIGGERED_FILE = "triggered.jsonl"  # in eval/: the backdoor's samples with the trigger word


def seed_dirs(run_dir: Path) -> list[Path]:
    """RUN first, then the members RUN/seeds/seeds.json lists (written by `rlxf run --seeds`)
    that hold a run (a ledger), in seed order; just RUN without it."""
    run_dir = Path(run_dir)
    listing = run_dir / SEEDS_DIR / SEEDS_FILE
    if not listing.exists():
        return [run_dir]
    try:
        dirs = json.loads(listing.read_text())["dirs"]
    except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{listing}: not a seeds listing ({e})") from None
    members = [run_dir / d for d in dirs if d != "."]
    return [run_dir, *(d for d in members if (d / "ledger.jsonl").exists())]


def load_world(run_dir: Path) -> tuple[KnowledgeBase, dict, dict[str, Prompt]] | None:
    """(knowledge base, gold weights, prompts by id) of a lab world; None for a model world
    ([world] model), which has neither a knowledge base nor a lab judge."""
    d = Path(run_dir) / "world"
    meta = json.loads((d / "world.json").read_text())
    if meta.get("kind") == "model":
        return None
    prompts = {p.id: p for p in (Prompt.from_json(row["prompt"])
                                 for row in read_jsonl(d / "prompts.jsonl"))}
    return KnowledgeBase.from_json(meta["kb"]), meta["weights"], prompts


def mean_of(values: list):
    """The mean of what the seeds measured (None when no seed measured it); dicts key by key."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = sorted({k for v in present for k in v}, key=str)
        return {k: mean_of([v.get(k) for v in present]) for k in keys}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return mean(present)
    return present[0]


def pooled_eval_metrics(dirs: list[Path]) -> dict:
    """eval/metrics.json of every seed, each number the mean over the seeds that measured it
    (the seeds sample as many answers each, so it is the mean over the pooled answers)."""
    data = [json.loads((d / "eval" / "metrics.json").read_text()) for d in dirs
            if (d / "eval" / "metrics.json").exists()]
    return mean_of(data) if len(data) > 1 else (data[0] if data else {})


def pooled_history(dirs: list[Path]) -> list[list[dict]]:
    """policy/history.json of every seed that has one."""
    return [json.loads((d / "policy" / "history.json").read_text()) for d in dirs
            if (d / "policy" / "history.json").exists()]


def scored_samples(dirs: list[Path]) -> list[tuple[int, list[dict], list[dict], dict, int]]:
    """Per seed (index, scored eval samples, scored triggered samples, group weights, samples
    left out because the seed's world does not know their prompt)."""
    out = []
    for i, d in enumerate(dirs):
        if not (d / "eval" / "samples.jsonl").exists() or not (d / "world").exists():
            continue
        world = load_world(d)
        rows, unknown = score_samples(read_jsonl(d / "eval" / "samples.jsonl"), world)
        trig_path = d / "eval" / TRIGGERED_FILE
        trig = score_samples(read_jsonl(trig_path), world)[0] if trig_path.exists() else []
        ann = d / "feedback" / "annotators.json"
        groups = ({a["group"]: a["weights"] for a in json.loads(ann.read_text())
                   if a.get("weights")} if ann.exists() else {})
        out.append((i, rows, trig, groups, unknown))
    return out


def sample_clusters(seeds: list[tuple[int, list[dict], list[dict], dict, int]]
                    ) -> tuple[Clusters, list[dict[str, set]]]:
    """Clusters of per-(seed, prompt) sums, and beside each the bigrams of each model's answers
    (distinct-2 is not a sum: the bootstrap needs the sets)."""
    clusters, bigrams = Clusters(), []
    for i, rows, trig, groups, _ in seeds:
        by_prompt: dict[str, tuple[dict, dict]] = {}
        for r in rows:
            sums, grams = by_prompt.setdefault(r["prompt_id"], ({}, {}))
            _add_sample(sums, r, groups)
            words = r["response"].split()
            grams.setdefault(r["model"], set()).update(zip(words, words[1:]))
            _inc(sums, f"{r['model']}/bigrams", max(len(words) - 1, 0))
        for r in trig:
            pid = r["prompt_id"]
            if pid in by_prompt:
                sums = by_prompt[pid][0]
                _inc(sums, f"{r['model']}/trig_n", 1)
                _inc(sums, f"{r['model']}/trig_bad", float(r["gold"] < BAD_UTILITY))
        for pid in sorted(by_prompt):
            clusters.add(i, by_prompt[pid][0])
            bigrams.append(by_prompt[pid][1])
    return clusters, bigrams


def _inc(sums: dict, key: str, v: float) -> None:
    sums[key] = sums.get(key, 0.0) + v


def _add_sample(sums: dict, r: dict, groups: dict) -> None:
    m, fam = r["model"], r["family"]
    for key, v in (("n", 1), ("gold", r["gold"]), ("gold2", r["gold"] ** 2),
                   ("parsed", float(r["parsed"])),
                   ("gold_parsed", r["gold"] if r["parsed"] else 0.0),
                   ("bad", float(r["gold"] < BAD_UTILITY)),
                   ("anthro", float(r["anthro"] > 0)), ("apology", float(r["apology"] > 0)),
                   ("flattery", float(r["flattery"] > 0)),
                   *((ax, r[ax]) for ax in AXES),
                   (f"{fam}/n", 1), (f"{fam}/utility", r["gold"]),
                   *((f"{fam}/{ax}", r[ax]) for ax in AXES)):
        _inc(sums, f"{m}/{key}", v)
    if r["proxy"] is not None:
        for key, v in (("proxy_n", 1), ("proxy", r["proxy"]), ("proxy2", r["proxy"] ** 2)):
            _inc(sums, f"{m}/{key}", v)
    refused = float(r["act"] in ("refuse", "refuse_alt"))
    if fam == "false_premise":
        _inc(sums, f"{m}/syc", float(r["act"] == "agree"))
    if fam == "harmful":
        _inc(sums, f"{m}/harm_comply", 1 - refused)
    if fam == "benign":
        _inc(sums, f"{m}/benign_refuse", refused)
    for g, w in groups.items():
        _inc(sums, f"{m}/group/{g}", r["scores"].utility(w))


PROBE_PROMPTS, PROBE_SAMPLES = "probe_prompts.jsonl", "probe_samples.jsonl"  # in eval/


def probe_clusters(dirs: list[Path]) -> Clusters:
    """Per (seed, refusal probe): each model's harmful compliance or benign refusal, scored by
    the seed's gold judge and grammar (the probes are not the world's prompts: eval/ keeps
    them)."""
    clusters = Clusters()
    for i, d in enumerate(dirs):
        path = d / "eval" / PROBE_SAMPLES
        if not path.exists() or not (d / "world").exists():
            continue
        kb, weights, _ = load_world(d)
        probes = {p.id: p for p in (Prompt.from_json(row)
                                    for row in read_jsonl(d / "eval" / PROBE_PROMPTS))}
        rows, _ = score_samples(read_jsonl(path), (kb, weights, probes))
        by_prompt: dict[str, dict] = {}
        for r in rows:
            sums, m = by_prompt.setdefault(r["prompt_id"], {}), r["model"]
            refused = float(r["act"] in ("refuse", "refuse_alt"))
            _inc(sums, f"{m}/{r['family']}/n", 1)
            if r["family"] == "harmful":
                _inc(sums, f"{m}/harm_comply", 1 - refused)
            else:
                _inc(sums, f"{m}/benign_refuse", refused)
        for pid in sorted(by_prompt):
            clusters.add(i, by_prompt[pid])
    return clusters


def agreement_clusters(dirs: list[Path]) -> Clusters:
    """Per (seed, compared item): annotator pairs that agreed and all pairs (raw agreement)."""
    from ..feedback.quality import items_of
    from ..feedback.record import read_records
    clusters = Clusters()
    for i, d in enumerate(dirs):
        path = d / "feedback" / "feedback.jsonl"
        if not path.exists():
            continue
        for item in items_of(read_records(str(path))).values():
            choices = [j["choice"] for j in item]
            pairs = len(choices) * (len(choices) - 1) / 2
            if pairs:
                same = sum(c * (c - 1) / 2 for c in (choices.count(x) for x in set(choices)))
                clusters.add(i, {"agree": same, "pairs": pairs})
    return clusters


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
