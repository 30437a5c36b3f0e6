"""The report of a real-model run: a directory whose ledger has no `world` record, written by
`rlxf sft|reward|dpo|kto|grpo|rloo|ppo` (OUT is a model directory and a run directory:
tune/run_record.py) or by `rlxf eval` (its RUN/ledger.jsonl with a record `stage = "eval"`).

The report has the lab report's top-level keys (report.schema.json): what a real run recorded
fills `run`, `stages`, `disclosure`, `training`, `feedback`, `reward_model` and, for the RL
commands, the over-optimisation points of their held-out history; what only the lab world can
measure (gold 3H, tensions, annotator groups, seeds) is empty or null with the reason in
`notes`. An eval record that names a policy directory with a ledger of its own brings that
training run's records in too, so the report of `rlxf eval` describes how the policy was made.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model_card import METHOD
from ..rundir import RunDir
from .disclosure import summary
from .real_facts import is_rl, missing_record_disclosure, real_disclosure
from .report import SCHEMA_VERSION, _clean

NO_GOLD = "a real run has no known gold preference (the lab pipeline, `rlxf run`, has one)"


def is_real_run(run_dir: Path) -> bool:
    """A ledger with records and none of them the lab's `world` stage."""
    ledger = RunDir(run_dir).ledger()
    return bool(ledger) and not any(r.get("stage") == "world" for r in ledger)


def linked_dirs(rec: dict) -> list[Path]:
    """Directories an eval record names as its policy (`inputs.policy`: a path, or an object
    with `dir` or `path`) that hold a ledger of their own."""
    value = (rec.get("inputs") or {}).get("policy") if rec.get("stage") == "eval" else None
    if isinstance(value, dict):
        value = value.get("dir") or value.get("path")
    if isinstance(value, str) and (Path(value) / "ledger.jsonl").exists():
        return [Path(value)]
    return []


def run_records(run_dir: Path) -> list[dict]:
    """Every ledger record of `run_dir`, after those of the policy directories its eval records
    name (each record once, with `_dir`: where its ledger is, relative to `run_dir`)."""
    run_dir = Path(run_dir)
    own = RunDir(run_dir).ledger()
    out: list[dict] = []
    seen = {os.path.abspath(run_dir)}
    for rec in own:
        for d in linked_dirs(rec):
            if os.path.abspath(d) not in seen:
                seen.add(os.path.abspath(d))
                out += [{**r, "_dir": os.path.relpath(d, run_dir)} for r in RunDir(d).ledger()]
    return out + [{**r, "_dir": "."} for r in own]


def training_record(records: list[dict]) -> dict | None:
    """The latest record of a training command (the policy's, when an eval brought it in)."""
    trained = [r for r in records if r.get("stage") in METHOD]
    return trained[-1] if trained else None


def _eval_sections(run_dir: Path, records: list[dict]) -> dict:
    """Report sections measured by `rlxf eval` (RUN/eval/: failure modes, models, samples,
    probes), or {} when this directory holds no eval; they replace the empty ones built here."""
    own = {r["stage"]: r for r in records if r.get("_dir") == "."}
    if "eval" not in own or not (run_dir / "eval" / "metrics.json").exists():
        return {}
    from .real_eval import eval_sections
    return eval_sections(run_dir, own)


# --- sections ---------------------------------------------------------------------------------

def _run_section(run_dir: Path, records: list[dict], rec: dict | None) -> dict:
    started = [r["started"] for r in records if r.get("started")]
    latest = max(records, key=lambda r: r.get("started") or "") if records else {}
    notes = {"config_sha256": "real-model commands take options, not a config.toml: each "
                              "record's resolved options are in the ledger (training.config)"}
    if rec is None:
        notes["seed"] = "no training record in the ledger"
    return {"id": Path(os.path.abspath(run_dir)).name, "kind": "real",
            "created": min(started) if started else None,
            "seed": (rec or {}).get("config", {}).get("seed"),
            "wall_s": round(sum(r.get("wall_s") or 0 for r in records), 3),
            "config_sha256": None, "versions": latest.get("versions"),
            "commands": [r.get("stage") for r in records], "notes": notes}


def _training_section(rec: dict | None) -> dict | None:
    if rec is None:
        return None
    return {k: rec.get(k) for k in ("stage", "inputs", "config", "resolved", "counts", "data_facts",
                                    "metrics", "output", "started", "wall_s")} | {
        "dir": rec.get("_dir"), "history": rec.get("history") or []}


def _feedback_section(rec: dict | None) -> dict:
    keys = ("n_judgements", "n_annotators", "agreement/raw", "agreement/krippendorff_alpha",
            "agreement/gwet_ac1")
    out: dict = {**dict.fromkeys(keys), "groups": {}}
    if rec is None or is_rl(rec) or not rec.get("data_facts", {}) or \
            "types" not in rec["data_facts"]:
        why = ("no training record" if rec is None else
               "rewards were computed on the policy's samples: no feedback records"
               if is_rl(rec) else "the data are not feedback records")
        return {**out, "notes": dict.fromkeys((*keys, "groups"), why)}
    c = rec.get("counts", {})
    out.update({"n_judgements": c.get("records"), "n_comparisons": c.get("pairs"),
                "source": "file", "file": rec["inputs"]["data"].get("file"),
                "format": rec["inputs"]["data"].get("format"),
                "types": rec["data_facts"]["types"]})
    notes = {"n_annotators": "the file's annotators are not counted by the training command",
             "groups": "annotator groups are not recorded by the training command"}
    notes.update(dict.fromkeys(keys[2:], f"`rlxf {rec['stage']}` measures no agreement"))
    return {**out, "notes": notes}


def _reward_model_section(rec: dict | None) -> dict:
    keys = ("accuracy/heldout", "accuracy/gold", "bias/length", "bias/flattery",
            "bias/sycophancy", "bias/anthropomorphic")
    out = dict.fromkeys(keys)
    if rec is not None and rec.get("stage") == "reward":
        m = rec.get("metrics", {})
        out.update({k: v for k, v in m.items() if k.startswith(("loss/", "accuracy/"))})
        notes = {"accuracy/heldout": "`rlxf reward` holds out no pairs",
                 "accuracy/gold": NO_GOLD}
        notes.update({k: "no bias probes run on this reward model (rlxf.probes can)"
                      for k in keys[2:]})
        return {**out, "notes": notes}
    why = ("no training record" if rec is None else
           f"`rlxf {rec['stage']}` trains no reward model")
    return {**out, "notes": dict.fromkeys(keys, why)}


def _overoptimisation_section(rec: dict | None) -> dict:
    history = (rec or {}).get("history") or []
    points = [{"step": h.get("step"), "kl": h.get("kl/to_reference"),
               "reward_proxy": h.get("reward/mean"), "reward_gold": None} for h in history]
    notes = {"fit": "Gao et al.'s fit needs a gold reward: " + NO_GOLD,
             "alarm": "not computed for real runs"}
    if points:
        notes["points"] = ("the RL command's held-out eval points: kl is KL(policy || "
                           "reference) in nats, reward_proxy the reward the policy was trained "
                           "on; no gold")
    else:
        notes["points"] = ("no held-out eval points: " + (
            "no prompts were held out" if rec is not None and is_rl(rec)
            else "only the RL commands (grpo, rloo, ppo) record them"))
    return {"points": points, "fit": None, "sweep": None, "alarm": None, "notes": notes}


def _stages_section(records: list[dict]) -> list[dict]:
    return [{"stage": r.get("stage"), "status": "done", "started": r.get("started"),
             "wall_s": r.get("wall_s"), "counts": r.get("counts"), "dir": r.get("_dir")}
            for r in records]


def _cards(run_dir: Path, records: list[dict]) -> dict[str, str]:
    """The model cards the commands wrote beside their models (README.md), run-relative."""
    out = {}
    for r in records:
        if r.get("stage") in METHOD:
            card = Path(r.get("_dir", ".")) / "README.md"
            if (run_dir / card).exists():
                out[r["stage"]] = card.as_posix()
    return out


def build_real_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    records = run_records(run_dir)
    rec = training_record(records)
    disclosure = (real_disclosure(rec) if rec is not None else missing_record_disclosure(
        "the ledger has no record of a training command (sft, reward, dpo, kto, grpo, rloo, "
        "ppo)"))
    eval_missing = ("no `rlxf eval` measurements in this run directory: `rlxf eval --policy "
                    "DIR --reference DIR --prompts FILE --out RUN` measures a policy")
    report = {
        "schema_version": SCHEMA_VERSION,
        "run": _run_section(run_dir, records, rec),
        "disclosure": disclosure,
        "disclosure_summary": summary(disclosure),
        "training": _training_section(rec),
        "models": {},
        "feedback": _feedback_section(rec),
        "reward_model": _reward_model_section(rec),
        "overoptimisation": _overoptimisation_section(rec),
        "groups": {},
        "tensions": {"per_family": {}, "deltas": {}, "intervals": {}, "tradeoffs": [],
                     "readings": [], "notes": {"tensions": "per-family gold 3H scores: "
                                               + NO_GOLD}},
        "seeds": None,
        "stages": _stages_section(records),
        "samples": [],
        "surface": None,
        "failure_modes": [],
        "cards": _cards(run_dir, records),
        "notes": {"models": eval_missing, "samples": eval_missing,
                  "failure_modes": eval_missing, "surface": eval_missing,
                  "seeds": "one training run: `--seeds` is the lab pipeline's",
                  "groups": "the training command records no annotator groups"},
    }
    if rec is None:
        report["notes"]["training"] = "no training record in the ledger"
    measured = _eval_sections(run_dir, records)
    for key in measured:  # what eval measured is no longer missing
        report["notes"].pop(key, None)
    report["notes"].update(measured.pop("notes", {}))
    report.update(measured)
    return _clean(report)
