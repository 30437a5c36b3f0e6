"""The report's `alignment_tax` section: what fine-tuning the RLHF'd policy on one narrow domain
undoes (stage `finetune`). Gold 3H and behaviour rates before (eval's policy) and after (the
tuned policy) on the same held-out prompts, overall and per prompt family, with after − before.
Read from finetune/_stage.json and finetune/metrics.json; with several seeds (`rlxf run --seeds`)
each number is the seeds' mean. `intervals`: the gold 3H deltas overall, on the tuned family and
on the other families, each with its 95% interval (bootstrap over seeds, then held-out prompts,
rlxf.audit.intervals) from the per-prompt samples before (eval/samples.jsonl, the policy's) and
after (finetune/samples.jsonl), rescored by each seed's gold judge."""

from __future__ import annotations

import json
from pathlib import Path

from ..rundir import read_jsonl
from .intervals import Bootstrap, Clusters, difference, ratio
from .pooled import load_world, mean_of
from .surface import score_samples
from .uncertainty import prompt_n

OVERALL = ("gold/utility", "gold/helpful", "gold/harmless", "gold/honest", "reward/proxy",
           "kl/to_sft", "rate/refusal_harmful", "rate/refusal_benign", "rate/sycophancy",
           "rate/overconfident", "rate/anthropomorphic", "rate/flattery", "world/parse_rate")
AXES = ("utility", "helpful", "harmless", "honest")
SCOPES = ("overall", "tuned", "others")  # every held-out prompt, the tuned family, the rest
GOLD = {"utility": "gold", "helpful": "helpful", "harmless": "harmless", "honest": "honest"}


def _delta(before, after) -> dict:
    return {"before": before, "after": after,
            "delta": after - before if before is not None and after is not None else None}


def tax_clusters(seeds: list[tuple[int, list[dict], list[dict]]], family: str) -> Clusters:
    """Per (seed, held-out prompt): sums of each gold axis and counts, before and after, overall
    and in the prompt's scope (`tuned` when its family is `family`, else `others`). `seeds`:
    (seed index, scored rows before, scored rows after), rows as surface.score_samples gives."""
    clusters = Clusters()
    for i, before, after in seeds:
        by_prompt: dict[str, dict[str, float]] = {}
        for when, rows in (("before", before), ("after", after)):
            for r in rows:
                sums = by_prompt.setdefault(r["prompt_id"], {})
                for scope in ("overall", "tuned" if r["family"] == family else "others"):
                    for key, v in (("n", 1.0), *((ax, r[GOLD[ax]]) for ax in AXES)):
                        k = f"{when}/{scope}/{key}"
                        sums[k] = sums.get(k, 0.0) + v
        for pid in sorted(by_prompt):
            clusters.add(i, by_prompt[pid])
    return clusters


def tax_intervals(clusters: Clusters) -> dict:
    """{SCOPE: {AXIS: interval of after − before}}: the mean over the scope's samples after minus
    before, with `within_noise` where its 95% interval spans zero (rlxf.audit.intervals)."""
    boot = Bootstrap.of(clusters)
    if boot is None:
        return {}
    m = clusters.matrix()
    out: dict = {}
    for scope in SCOPES:
        if f"after/{scope}/n" not in clusters.columns:
            continue
        n = prompt_n(clusters, m, f"after/{scope}/n")
        out[scope] = {ax: boot.interval(difference(ratio(f"after/{scope}/{ax}", f"after/{scope}/n"),
                                                   ratio(f"before/{scope}/{ax}",
                                                         f"before/{scope}/n")),
                                        change=True, n=n)
                      for ax in AXES}
    return out


def _scored_seeds(dirs: list[Path]) -> list[tuple[int, list[dict], list[dict]]]:
    """Per seed that ran stage finetune: its policy's eval samples and the tuned model's, scored
    by the seed's own gold judge."""
    out = []
    for i, d in enumerate(dirs):
        after = d / "finetune" / "samples.jsonl"
        if not after.exists() or not (d / "eval" / "samples.jsonl").exists():
            continue
        world = load_world(d)
        before = [r for r in read_jsonl(d / "eval" / "samples.jsonl") if r.get("model") == "policy"]
        out.append((i, score_samples(before, world)[0], score_samples(read_jsonl(after), world)[0]))
    return out


def build_alignment_tax(run_dir: Path, records: dict, dirs: list[Path] | None = None) -> dict:
    """`dirs`: the run's seeds (pooled.seed_dirs), RUN first; just RUN when not given."""
    dirs = dirs or [run_dir]
    rec = records.get("finetune")
    out: dict = {"family": None, "train": None, "overall": {}, "per_family": {}, "notes": {},
                 "definition": ("before: the RLHF'd policy as eval measured it; after: the same "
                                "policy fine-tuned (all weights) on demonstrations of one prompt "
                                "family, sampled on the same held-out prompts with the same "
                                "settings; delta = after − before")}
    if rec is None or not rec.get("counts", {}).get("demonstrations"):
        out["notes"]["finetune"] = ("stage finetune has not run" if rec is None else
                                    "[finetune] enabled is false: the alignment tax of later "
                                    "fine-tuning was not measured")
        return out
    tuned = [d for d in dirs if (d / "finetune" / "metrics.json").exists()]
    data = mean_of([json.loads((d / "finetune" / "metrics.json").read_text()) for d in tuned])
    cfg = rec.get("config", {}).get("finetune", {})
    out["family"] = data["family"]
    out["train"] = {"steps": cfg.get("steps"), "lr": cfg.get("lr"),
                    "n_demonstrations": rec["counts"]["demonstrations"],
                    "loss/lm": rec.get("metrics", {}).get("loss/lm")}
    before, after = data["before"], data["after"]
    for k in OVERALL:
        out["overall"][k] = _delta(before["metrics"].get(k), after["metrics"].get(k))
        if out["overall"][k]["delta"] is None:
            out["notes"][f"overall.{k}"] = "not measured before or after (no prompt of its kind)"
    for fam in sorted(set(before["per_family"]) | set(after["per_family"])):
        b, a = before["per_family"].get(fam) or {}, after["per_family"].get(fam) or {}
        out["per_family"][fam] = {"n": a.get("n", b.get("n")), "tuned_on": fam == data["family"],
                                  **{ax: _delta(b.get(ax), a.get(ax)) for ax in AXES}}
    out["seeds"] = len(tuned)
    scored = _scored_seeds(tuned)
    out["intervals"] = tax_intervals(tax_clusters(scored, data["family"]))
    if not out["intervals"]:
        out["notes"]["intervals"] = ("no seed has both eval/samples.jsonl and "
                                     "finetune/samples.jsonl: no per-prompt numbers to draw from")
    return out
