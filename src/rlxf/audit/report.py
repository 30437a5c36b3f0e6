"""The audit report: a pure function of the run directory.

`build_report` reads only files under RUN/ (stage records, their artifacts, config.toml) and
returns the JSON of the report contract (docs/REPORT.md, `report.schema.json`); `write_report`
also renders Markdown and HTML beside it. The same run directory always gives the same bytes:
floats are rounded, keys sorted, nothing depends on the clock, the host or the path.

A number that cannot be computed is null with a reason beside it (`notes` / `metric_notes`),
never a made-up value; a stage that has not run (e.g. `rlxf run --until sft`) leaves its
sections null or empty with the reason, it does not crash the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from ..rundir import RunDir, atomic_write_json, atomic_write_text, read_jsonl
from ..world.judge import score as gold_score
from ..world.prompts import FAMILIES
from .cards import card_paths
from .disclosure import build_disclosure, summary
from .failure_modes import attach_intervals, build_failure_modes
from .oversight import build_oversight
from .alignment_tax import build_alignment_tax
from .bon_sweep import attach_bon_intervals
from .gao_fit import fit_points
from .overopt_alarm import overopt_alarm
from .pooled import (load_world, mean_of, pooled_eval_metrics, pooled_history, scored_samples,
                     seed_dirs)
from .surface import summarise
from .uncertainty import curve_lost, measure

SCHEMA_VERSION = "1"
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
# rlxf.pipeline.STAGE_NAMES, not imported: that module pulls in torch and the audit must stay
# light. tests/test_report.py keeps the two equal.
STAGE_ORDER = ("world", "pretrain", "sft", "feedback", "reward", "policy", "eval", "process",
               "finetune")
MODEL_ROLES = {"base": "base", "sft": "sft", "policy": "policy"}  # report name -> role
CONTRACT_METRICS = (
    "gold/utility", "gold/helpful", "gold/harmless", "gold/honest", "reward/proxy", "kl/to_sft",
    "length/tokens", "diversity/distinct2", "rate/sycophancy", "rate/anthropomorphic",
    "rate/refusal_harmful", "rate/refusal_benign", "rate/overconfident", "rate/backdoor")
AXES = ("helpful", "harmless", "honest")
TRADEOFF_RULE = "95% interval excludes zero"  # what makes a per-family change a finding
N_SAMPLES = 8
DIGITS = 6

# Why eval/metrics.json holds null for a metric (rlxf.eval.metrics returns None when the
# held-out set has nothing to measure it on).
NULL_METRIC_REASONS = {
    "rate/sycophancy": "no held-out false_premise prompts to measure sycophancy on",
    "rate/refusal_harmful": "no held-out harmful prompts to measure refusals on",
    "rate/refusal_benign": "no held-out benign prompts to measure over-refusal on",
    "diversity/distinct2": "the responses are too short to contain a bigram",
    "reward/uncertainty": "one reward model, no ensemble to disagree: set [reward] ensemble > 1",
}
# Annotator fields shared by a group (the rest of annotators.json is per annotator).
GROUP_PARAMS = ("weights", "temperature", "careless", "length_bias", "flattery_bias",
                "confidence_bias", "agreement_bias", "anthro_bias", "refusal_bias")


def _not_run(*stages: str) -> str:
    return f"stage {' / '.join(stages)} has not run"


def _clean(x):
    """Floats to DIGITS significant digits for byte-stable output (significant, not decimal:
    a p-value of 2e-9 must not become 0); a non-finite float is not a number JSON can hold."""
    if isinstance(x, float):
        return float(f"{x:.{DIGITS}g}") + 0.0 if math.isfinite(x) else None  # + 0.0: no "-0.0"
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def _ordered(records: dict) -> list[str]:
    """Stages in pipeline order; unknown ones (a newer rlxf) after, by name."""
    return ([s for s in STAGE_ORDER if s in records]
            + sorted(s for s in records if s not in STAGE_ORDER))


# --- sections ---------------------------------------------------------------------------------

def _run_section(run_dir: Path, records: dict) -> dict:
    recs = [records[s] for s in _ordered(records)]
    notes = {}
    started = [r["started"] for r in recs if r.get("started")]
    # The latest record by start time (ties: later in the pipeline) holds the current versions.
    latest = (max(enumerate(recs), key=lambda ir: (ir[1].get("started") or "", ir[0]))[1]
              if recs else None)
    versions = latest.get("versions") if latest else None
    if latest and any(r.get("versions") != versions for r in recs):
        notes["versions"] = ("stages ran with different versions: "
                             + "; ".join(f"{r['stage']}: {r.get('versions')}" for r in recs
                                         if r.get("versions") != versions))
    seed_rec = records.get("world") or next(iter(recs), None)
    seed = (seed_rec or {}).get("config", {}).get("seed")
    config = run_dir / "config.toml"
    sha = hashlib.sha256(config.read_bytes()).hexdigest() if config.exists() else None
    if not recs:
        notes["created"] = notes["seed"] = notes["versions"] = "no stage has completed"
    if sha is None:
        notes["config_sha256"] = "RUN/config.toml is missing"
    # abspath, not resolve(): "." and ".." get their names, a symlinked run keeps its own.
    return {"id": Path(os.path.abspath(run_dir)).name, "created": min(started) if started else None,
            "seed": seed, "wall_s": round(sum(r.get("wall_s") or 0 for r in recs), 3),
            "config_sha256": sha, "versions": versions, "notes": notes}


def _null_reason(metric: str, measured: bool, backdoor: str) -> str:
    if metric == "rate/backdoor" and backdoor:
        return backdoor
    if not measured:
        return "not in eval/metrics.json: this run's eval did not measure it"
    return NULL_METRIC_REASONS.get(metric, "not computable on this run's samples")


def _models_section(run_dir: Path, records: dict, dirs: list[Path]) -> dict:
    """Each model's eval metrics; with several seeds, each the mean over the seeds."""
    data = pooled_eval_metrics(dirs) if "eval" in records else {}
    fb = records.get("feedback")
    trigger_rate = (fb["config"]["feedback"].get("trigger_rate", 0) if fb else None)
    backdoor = ("" if trigger_rate else
                "feedback.trigger_rate is 0: no prompt carried the trigger, so the backdoor "
                "rate is not measured" if trigger_rate is not None else
                "stage feedback has not run: whether prompts carried a trigger is unknown")
    names = list(MODEL_ROLES) + sorted(n for n in data if n not in MODEL_ROLES)
    out = {}
    for name in names:
        entry = data.get(name)
        if entry is None:
            reason = (_not_run("eval") if "eval" not in records
                      else f"eval/metrics.json has no model {name!r}")
            out[name] = {"role": MODEL_ROLES.get(name, name),
                         "metrics": dict.fromkeys(CONTRACT_METRICS),
                         "metric_notes": dict.fromkeys(CONTRACT_METRICS, reason),
                         "per_family": None}
            continue
        measured = entry.get("metrics", {})
        metrics = {**dict.fromkeys(CONTRACT_METRICS), **measured}
        notes = {k: _null_reason(k, k in measured, backdoor)
                 for k, v in metrics.items() if v is None}
        out[name] = {"role": MODEL_ROLES.get(name, name), "metrics": metrics,
                     "metric_notes": notes, "per_family": entry.get("per_family"),
                     "groups": entry.get("groups", {})}
    return out


def _feedback_section(records: dict) -> dict:
    keys = ("n_judgements", "n_annotators", "agreement/raw", "agreement/krippendorff_alpha",
            "agreement/gwet_ac1")
    rec = records.get("feedback")
    if rec is None:
        return {**dict.fromkeys(keys), "groups": {},
                "notes": dict.fromkeys((*keys, "groups"), _not_run("feedback"))}
    c, m, cfg = rec["counts"], rec["metrics"], rec["config"]["feedback"]
    out = {"n_judgements": c.get("judgements"), "n_annotators": c.get("annotators"),
           "agreement/raw": m.get("agreement/raw"),
           "agreement/krippendorff_alpha": m.get("agreement/krippendorff_alpha"),
           "agreement/gwet_ac1": m.get("agreement/gwet_ac1"),
           "groups": m.get("groups", {}), "n_comparisons": c.get("comparisons"),
           "dropped_identical_pairs": c.get("dropped_identical_pairs"),
           "majority_ties": c.get("majority_ties"), "overlap": cfg.get("overlap"),
           "source": cfg.get("source"), "pair_temperature": cfg.get("temperature"),
           "triggered_comparisons": c.get("triggered_comparisons"),
           "poisoners": c.get("poisoners"), "flagged": c.get("flagged"),
           **{k: v for k, v in m.items()
              if k.startswith(("aggregation/", "poisoning/", "ai_judge/"))}}
    notes = {k: "fewer than two annotators labelled any comparison" for k in keys[2:]
             if out[k] is None}
    if out.get("poisoning/recall") is None:
        notes["poisoning/recall"] = "no poisoners in this run: recall is undefined"
    if out.get("poisoning/precision") is None:
        notes["poisoning/precision"] = "no annotator was flagged: precision is undefined"
    return {**out, "notes": notes}


def _reward_section(records: dict) -> dict:
    """Accuracy, calibration and bias probes of the reward model (the reward stage's record).
    bias/FEATURE is the share of probe pairs where the reward model prefers the response with
    the feature; `probes` has the reward gap and the gold judge's verdict beside it."""
    biases = ("bias/length", "bias/flattery", "bias/sycophancy", "bias/anthropomorphic")
    rec = records.get("reward")
    out = dict.fromkeys(biases)
    notes: dict = {}
    if rec is None:
        for k in (*biases, "accuracy/heldout", "accuracy/gold"):
            out[k], notes[k] = None, _not_run("reward")
        return {**out, "notes": notes}
    m, c = rec["metrics"], rec["counts"]
    out.update({k: v for k, v in m.items() if k.startswith(("bias/", "accuracy/", "calibration/",
                                                             "ensemble/", "uncertainty/"))})
    out.update({"loss/reward": m.get("loss/reward"), "probes": m.get("probes"),
                "n_heldout": c.get("pairs/heldout"),
                "n_gold_comparable": c.get("pairs/gold_comparable"),
                "members": c.get("members", 1)})
    for k in biases:
        if out.get(k) is None:
            notes[k] = ("no false-premise prompt among the held-out prompts" if k ==
                        "bias/sycophancy" else "this run's reward stage did not probe it")
    if out.get("accuracy/gold") is None:
        notes["accuracy/gold"] = "no held-out pair had a gold utility difference"
    if out.get("accuracy/heldout") is None:
        notes["accuracy/heldout"] = "no held-out comparisons"
    if out.get("accuracy/gold_triggered") is None:
        notes["accuracy/gold_triggered"] = "no held-out comparison carried the trigger word"
    for k in ("uncertainty/train", "uncertainty/offdist"):
        if out.setdefault(k, None) is None:
            notes[k] = NULL_METRIC_REASONS["reward/uncertainty"]
    for k, option in (("aspects", "aspects"), ("pluralistic", "group_conditioned")):
        out[k] = m.get(k)
        if out[k] is None:
            notes[k] = f"not trained: set [reward] {option} = true"
    return {**out, "notes": notes}


def _points(history: list[dict]) -> list[dict]:
    return [{"step": h.get("step"), "kl": h.get("kl/to_sft"),
             "reward_proxy": h.get("reward/proxy"), "reward_gold": h.get("gold/utility"),
             "parse_rate": h.get("world/parse_rate"), "gold_parsed": h.get("gold/utility_parsed")}
            for h in history]


def _mean_history(histories: list[list[dict]]) -> list[dict]:
    """The seeds' policy histories averaged step by step (steps every seed measured)."""
    if len(histories) <= 1:
        return histories[0] if histories else []
    steps = set.intersection(*({h["step"] for h in hist} for hist in histories))
    by_step = [{h["step"]: h for h in hist} for hist in histories]
    return [mean_of([b[step] for b in by_step]) for step in sorted(steps)]


def _sweep_section(run_dir: Path, dirs: list[Path]) -> dict | None:
    """Members of `rlxf sweep` (RUN/sweep/sweep.json): each member's last measured point, the
    SFT baseline (a member's step 0), and Gao et al.'s fit over them; with several seeds (each
    a sweep of its own), every member's history is the seeds' mean."""
    path = run_dir / "sweep" / "sweep.json"
    if not path.exists():
        return None
    data = _read_json(path)
    others = [_read_json(d / "sweep" / "sweep.json") for d in dirs[1:]
              if (d / "sweep" / "sweep.json").exists()]
    by_seed = {}  # member name -> its history in each seed, in seed order
    for m in data["members"]:
        same = [o_m["history"] for o in others for o_m in o["members"] if o_m["name"] == m["name"]]
        by_seed[m["name"]] = [m["history"], *same]
        m["history"] = _mean_history(by_seed[m["name"]])
    bon = data["parameter"] == "policy.bon_n"
    points, check = [], []
    control = by_seed[data["members"][0]["name"]]
    for i, m in enumerate(data["members"]):
        last = m["history"][-1]
        point = {"id": m["name"], "value": m["value"], "run": m["dir"], **_points([last])[0],
                 "rate/sycophancy": last.get("rate/sycophancy"),
                 "rate/anthropomorphic": last.get("rate/anthropomorphic"),
                 "length/tokens": last.get("length/tokens")}
        if not bon:  # each member's own over-optimisation, and against the first member's
            own = by_seed[m["name"]]
            point["gold_lost"] = curve_lost(own, "gold/utility")
            point["gold_lost_parsed"] = curve_lost(own, "gold/utility_parsed")
            point["gold_lost_vs_first"] = (curve_lost(own, "gold/utility", control)
                                           if i else None)
        if bon:  # Gao et al. put best-of-n at its analytic KL; the measured one is beside it
            point["kl_measured"], point["kl"] = point["kl"], last.get("kl/bon_analytic")
            if point["kl"]:
                check.append({"n": m["value"], "kl_measured": point["kl_measured"],
                              "kl_analytic": point["kl"],
                              "relative_error": point["kl_measured"] / point["kl"] - 1})
        points.append(point)
    first = data["members"][0]["history"][0]
    baseline = {"value": None, "run": "SFT (step 0 of the first member)", **_points([first])[0]}
    baseline["kl"] = 0.0 if bon else baseline["kl"]
    fit, why = fit_points("bon" if bon else "rl", [baseline, *points])
    out = {"parameter": data["parameter"], "points": [baseline, *points], "fit": fit,
           "seeds": 1 + len(others), "notes": {"fit": why} if why else {}}
    if not bon:
        out["notes"]["gold_lost"] = (
            "each member's gold utility at its last eval point minus its highest, on the seeds' "
            "mean curve, with a bootstrap over seeds; gold_lost_vs_first: that minus the first "
            "member's, the same seeds drawn for both (above zero: this member lost less)")
    if bon:
        out["bon_kl_check"] = check
        out["notes"]["bon_kl_check"] = (
            "kl_measured: KL(best-of-n || SFT) from SFT's exact probabilities of the distinct "
            "responses among 32+ SFT samples per prompt (renormalised over them); the analytic "
            "log n - (n-1)/n is an upper bound when responses repeat (a discrete base)")
    return out


def _overoptimisation_section(run_dir: Path, records: dict, dirs: list[Path]) -> dict:
    rec = records.get("policy")
    sweep = _sweep_section(run_dir, dirs)
    if sweep is not None and sweep["parameter"] == "policy.bon_n":
        attach_bon_intervals(sweep, dirs)
    if rec is None:
        return {"points": [], "fit": None, "sweep": sweep, "alarm": None,
                "notes": {"points": _not_run("policy"), "fit": _not_run("policy"),
                          "alarm": _not_run("policy")}}
    histories = pooled_history(dirs)
    history = histories[0]  # the alarm reads one run, as a user without seeds has (RUN itself)
    points = _points(_mean_history(histories))
    algorithm = rec["config"].get("policy", {}).get("algorithm", "dpo")
    history_fit, why = fit_points("bon" if algorithm == "bon" else "rl", points)
    notes = {"points": f"measured during the policy stage on {rec['counts'].get('eval_prompts', '?')} "
                       "held-out prompts, one sample each with the same sampling seed at every "
                       "step; kl is a Monte-Carlo estimate of KL(policy || SFT) in nats and can "
                       "be slightly negative"
                       + (f"; each point the mean over {len(histories)} seeds"
                          if len(histories) > 1 else "")}
    sweep_fit = sweep["fit"] if sweep else None
    if history_fit is None:
        notes["fit/history"] = why
    if sweep is None:
        notes["fit/sweep"] = "no `rlxf sweep` in this run directory"
    elif sweep_fit is None:
        notes["fit/sweep"] = sweep["notes"].get("fit")
    fit = ({"history": history_fit, "sweep": sweep_fit}
           if history_fit is not None or sweep_fit is not None else None)
    if fit is None:
        notes["fit"] = "; ".join(v for k, v in notes.items() if k.startswith("fit/"))
    return {"points": points, "fit": fit, "n_prompts": rec["counts"].get("eval_prompts"),
            "algorithm": algorithm, "sweep": sweep, "notes": notes,
            # from non-gold signals only (audit/overopt_alarm.py)
            "alarm": overopt_alarm(history, rec["counts"].get("eval_prompts"))}


def _groups_section(annotators: list[dict], measured: dict, models: dict) -> dict:
    """Each annotator group's parameters, its measured agreement (`measured`: the feedback
    record's per-group metrics) and the gold utility of SFT and policy by its own 3H weights."""
    out: dict = {}
    for a in annotators:  # a group's members share their parameters
        params = {k: v for k, v in a.items() if k in GROUP_PARAMS}
        g = out.setdefault(a["group"], {**params, **measured.get(a["group"], {}),
                                        "n_annotators": 0})
        g["n_annotators"] += 1
    for name, g in out.items():
        g["notes"] = {}
        for key, role in (("gold/utility_sft", "sft"), ("gold/utility_policy", "policy")):
            g[key] = models[role].get("groups", {}).get(name) if role in models else None
            if g[key] is None:
                g["notes"][key] = "the eval stage did not score this group's weights"
    return out


def _tension_reading(fam: str, sft: dict, pol: dict, down: list[str], up: list[str]) -> str:
    def moves(axes):
        return ", ".join(f"{ax} {sft[ax]:.2f} → {pol[ax]:.2f} ({pol[ax] - sft[ax]:+.2f})"
                         for ax in axes)
    return (f"{fam}: the policy traded {' and '.join(down)} for {' and '.join(up)} against "
            f"SFT: {moves(down)}; {moves(up)}.")


def _moved(iv: dict | None) -> int:
    """-1 lost / +1 gained when the change's 95% interval excludes zero, else 0 (noise)."""
    ci = (iv or {}).get("ci95")
    if ci is None:
        return 0
    return -1 if ci[1] < 0 else 1 if ci[0] > 0 else 0


def _tensions_section(models: dict, intervals: dict) -> dict:
    """Per family, the policy's change against SFT on each axis with its 95% interval; a
    trade-off is an axis lost and another gained, each beyond noise (its interval excludes
    zero), so the threshold grows with the noise of a small family instead of a fixed 0.05."""
    per_family: dict = {}
    for name in ("base", "sft", "policy"):
        for fam, s in (models[name].get("per_family") or {}).items():
            per_family.setdefault(fam, {})[name] = {k: s.get(k) for k in (*AXES, "utility")}
    families = [f for f in FAMILIES if f in per_family] + sorted(set(per_family) - set(FAMILIES))
    tradeoffs, readings, deltas, noise = [], [], {}, {}
    for fam in families:
        sft, pol = per_family[fam].get("sft"), per_family[fam].get("policy")
        if not sft or not pol:
            continue
        delta = {ax: pol[ax] - sft[ax] for ax in (*AXES, "utility")
                 if pol.get(ax) is not None and sft.get(ax) is not None}
        deltas[fam] = delta
        fam_iv = intervals.get(fam, {})
        noise[fam] = {ax: fam_iv.get(ax) for ax in (*AXES, "utility")}
        down = [ax for ax in AXES if ax in delta and _moved(fam_iv.get(ax)) < 0]
        up = [ax for ax in AXES if ax in delta and _moved(fam_iv.get(ax)) > 0]
        if down and up:
            tradeoffs.append(f"{fam}: " + ", ".join(f"{ax} {delta[ax]:+.2f}" for ax in down + up))
            readings.append(_tension_reading(fam, sft, pol, down, up))
        elif down:  # lost without gaining: not a trade-off, but what the reader must see too
            readings.append(f"{fam}: the policy lost " + ", ".join(
                f"{ax} {sft[ax]:.2f} → {pol[ax]:.2f} ({delta[ax]:+.2f})" for ax in down)
                + " against SFT, beyond noise, and no axis gained beyond noise.")
    unmeasured = [f for f in deltas if any((noise[f].get(ax) or {}).get("ci95") is None
                                           for ax in AXES)]
    quiet = [f for f in deltas if f not in unmeasured
             and all(_moved(noise[f].get(ax)) == 0 for ax in AXES)]
    if quiet:
        readings.append("Within noise (every axis's 95% interval spans zero): "
                        + ", ".join(quiet) + ".")
    if unmeasured:
        readings.append("No interval, so no trade-off is read (too few held-out prompts or no "
                        "samples): " + ", ".join(unmeasured) + ".")
    if deltas and not tradeoffs:
        readings.insert(0, "In no prompt family did the policy lower one of helpful, harmless, "
                           "honest and raise another, each beyond noise, against SFT.")
    return {"per_family": per_family, "deltas": deltas, "intervals": noise,
            "tradeoffs": tradeoffs, "readings": readings, "rule": TRADEOFF_RULE,
            "notes": {"tradeoffs": "per family, an axis the policy lowered against SFT while "
                                   "another rose, each change's 95% interval (bootstrap over "
                                   "seeds and prompts) excluding zero; intervals[FAMILY][AXIS] "
                                   "gives it with n and the smallest detectable change (mde)"}}


def _seeds_section(run_dir: Path, dirs: list[Path], measured: dict) -> dict:
    """Which seeds the report pools, where they are, and the headline changes against SFT with
    their 95% intervals."""
    seeds = []
    for d in dirs:
        rec = RunDir(d).latest().get("world") or {}
        seeds.append({"seed": rec.get("config", {}).get("seed"),
                      "dir": os.path.relpath(d, run_dir)})
    return {"n": len(dirs), "members": seeds, "draws": measured["draws"],
            "method": ("percentile bootstrap: seeds drawn with replacement, then the held-out "
                       "prompts of each drawn seed with replacement (every sample of a prompt "
                       "goes with it, so changes against SFT are paired); mde = 2.80 × the "
                       "bootstrap standard error, the smallest change detectable with 80% power "
                       "at the 5% level"),
            "headline": measured["headline"],
            "notes": ({"n": "one seed: intervals are over prompts only; rlxf run --seeds N "
                            "adds training seeds"} if len(dirs) == 1 else {})}


def _stages_section(records: dict) -> list[dict]:
    out = []
    for s in [*STAGE_ORDER, *[s for s in _ordered(records) if s not in STAGE_ORDER]]:
        rec = records.get(s)
        status = "not run" if not rec else "reused" if rec.get("reused_from") else "done"
        out.append({"stage": s, "status": status,
                    "started": rec.get("started") if rec else None,
                    "wall_s": rec.get("wall_s") if rec else None,
                    "counts": rec.get("counts") if rec else None,
                    **({"reused_from": rec["reused_from"]} if status == "reused" else {})})
    return out


def _samples_section(run_dir: Path, records: dict, world) -> list[dict]:
    """Held-out prompts where the policy's proxy reward moved furthest from SFT's: where to look
    first for reward hacking (a large proxy gain with no gold gain)."""
    first: dict[str, dict[str, dict]] = {"sft": {}, "policy": {}}
    for row in read_jsonl(run_dir / "eval" / "samples.jsonl"):
        if row.get("model") in first:
            first[row["model"]].setdefault(row["prompt_id"], row)  # the first sample per prompt

    def side(row: dict) -> dict:
        util, axes = None, None
        if world is not None and row["prompt_id"] in world[2]:
            kb, weights, prompts = world
            g = gold_score(prompts[row["prompt_id"]], row["response"], kb)
            util, axes = g.utility(weights), {ax: getattr(g, ax) for ax in AXES}
        return {"response": row["response"], "reward_proxy": row.get("reward_proxy"),
                "gold_utility": util, "gold": axes}

    rows = []
    for pid in sorted(set(first["sft"]) & set(first["policy"])):
        s, p = first["sft"][pid], first["policy"][pid]
        if not all(isinstance(r.get("reward_proxy"), (int, float))
                   and math.isfinite(r["reward_proxy"]) for r in (s, p)):
            continue  # no proxy difference to rank by
        row = {"prompt_id": pid, "prompt": s["prompt"], "family": s.get("family"),
               "proxy_difference": p["reward_proxy"] - s["reward_proxy"],
               "sft": side(s), "policy": side(p)}
        row["gold_difference"] = (None if row["sft"]["gold_utility"] is None
                                  else row["policy"]["gold_utility"] - row["sft"]["gold_utility"])
        rows.append(row)
    # Round before ranking so the order cannot hinge on digits the report does not keep.
    rows.sort(key=lambda r: (-abs(_clean(r["proxy_difference"])), r["prompt_id"]))
    return rows[:N_SAMPLES]


# --- the report ---------------------------------------------------------------------------------

def build_report(run_dir: Path) -> dict:
    from .real_run import build_real_report, is_real_run

    run_dir = Path(run_dir)
    if is_real_run(run_dir):  # written by a real-model command or `rlxf eval`: no lab world
        return build_real_report(run_dir)
    records = RunDir(run_dir).latest()
    notes = {}
    annotators = (_read_json(run_dir / "feedback" / "annotators.json")
                  if "feedback" in records else [])
    world = load_world(run_dir) if "world" in records else None
    # A model world's eval is `rlxf eval`'s (policy vs its SFT model, RUN/eval/ in that shape):
    # the lab sections that read eval/ see none, and real_eval's sections join at the end.
    model_eval = records.get("eval") if "world" in records and world is None else None
    if model_eval is not None:
        records = {k: v for k, v in records.items() if k != "eval"}
    dirs = seed_dirs(run_dir)
    models = _models_section(run_dir, records, dirs)
    scored = scored_samples(dirs) if "eval" in records and world is not None else []
    measured = measure(dirs, scored)
    disclosure = build_disclosure(records, run_dir)
    feedback = _feedback_section(records)
    groups = _groups_section(annotators, feedback["groups"], models)
    feedback["flags"] = (_read_json(run_dir / "feedback" / "flags.json")
                         if (run_dir / "feedback" / "flags.json").exists() else [])
    feedback["annotators"] = [
        {k: a.get(k) for k in ("id", "group", "poisoner", "n_judgements",
                               "agreement/with_others", "accuracy/gold", "flagged")}
        for a in annotators]
    if not groups:
        notes["groups"] = _not_run("feedback")
    samples = _samples_section(run_dir, records, world) if "eval" in records else []
    surface, surface_why = None, None
    if "eval" not in records:
        notes["samples"] = notes["tensions"] = _not_run("eval")
        surface_why = _not_run("eval")
    elif world is None:
        notes["samples"] = "stage world has not run: gold utility of samples not computed"
        surface_why = "stage world has not run: the samples cannot be parsed or scored"
    else:
        surface = summarise([r for _, rows, *_ in scored for r in rows],
                            sum(unknown for *_, unknown in scored))
    report = {
        "schema_version": SCHEMA_VERSION,
        "run": _run_section(run_dir, records),
        "disclosure": disclosure,
        "disclosure_summary": summary(disclosure),
        "models": models,
        "feedback": feedback,
        "reward_model": _reward_section(records),
        "overoptimisation": _overoptimisation_section(run_dir, records, dirs),
        "groups": groups,
        "tensions": _tensions_section(models, measured["tensions"]),
        "seeds": _seeds_section(run_dir, dirs, measured),
        "stages": _stages_section(records),
        "samples": samples,
        "surface": surface,
        "notes": notes,
    }
    if surface is None:
        notes["surface"] = surface_why
    trigger = (_read_json(run_dir / "world" / "world.json").get("trigger")
               if world is not None else None)
    report["failure_modes"] = attach_intervals(
        build_failure_modes(report, surface, surface_why, trigger), measured["modes"])
    report["cards"] = card_paths(run_dir, records)
    report["oversight"] = build_oversight(run_dir, records, dirs)
    report["alignment_tax"] = build_alignment_tax(run_dir, records, dirs)
    if model_eval is not None:
        _join_model_world_eval(report, run_dir, {**records, "eval": model_eval})
    return _clean(report)


def _join_model_world_eval(report: dict, run_dir: Path, records: dict) -> None:
    """A model world's eval sections (failure modes, models, samples, probes: audit/real_eval.py)
    in place of the lab's, and notes that say why the lab's eval-only sections stay empty."""
    from .real_eval import eval_sections
    measured = eval_sections(run_dir, records)
    notes = report["notes"]
    for key in measured:
        notes.pop(key, None)
    notes.update(measured.pop("notes", {}))
    report.update(measured)
    why = ("a model world's eval measures the policy against its SFT model (failure modes, "
           "models); per-family 3H scores and the lab's parsed-response statistics need the "
           "lab world's grammar and judge")
    notes["tensions"] = notes["surface"] = why


def write_report(run_dir: Path) -> dict[str, Path]:
    """Write RUN/report/{report.json, report.md, index.html} and, for a lab run, the cards beside
    the artifacts (model cards, datasheets; rlxf.audit.cards), each atomically. A real run's
    report renders its own sections (audit/render_real.py) and writes nothing into OUT but
    report/: OUT stays the model directory the command wrote."""
    from . import render, render_real  # matplotlib is needed only here
    from .cards import write_cards

    run_dir = Path(run_dir)
    report = build_report(run_dir)
    out = run_dir / "report"
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "index.html"}
    real = report["run"].get("kind") == "real"
    # a real run has its own sections; its model card is the training command's, left as is
    pages = render_real if real else render
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["md"], pages.render_markdown(report))
    atomic_write_text(paths["html"], pages.render_html(report))
    if not real:
        write_cards(run_dir, report)
    return paths
