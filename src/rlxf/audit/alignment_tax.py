"""The report's `alignment_tax` section: what fine-tuning the RLHF'd policy on one narrow domain
undoes (stage `finetune`). Gold 3H and behaviour rates before (eval's policy) and after (the
tuned policy) on the same held-out prompts, overall and per prompt family, with after − before.
Read from finetune/_stage.json and finetune/metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

OVERALL = ("gold/utility", "gold/helpful", "gold/harmless", "gold/honest", "reward/proxy",
           "kl/to_sft", "rate/refusal_harmful", "rate/refusal_benign", "rate/sycophancy",
           "rate/overconfident", "rate/anthropomorphic", "rate/flattery", "world/parse_rate")
AXES = ("utility", "helpful", "harmless", "honest")


def _delta(before, after) -> dict:
    return {"before": before, "after": after,
            "delta": after - before if before is not None and after is not None else None}


def build_alignment_tax(run_dir: Path, records: dict) -> dict:
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
    data = json.loads((run_dir / "finetune" / "metrics.json").read_text())
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
    return out
