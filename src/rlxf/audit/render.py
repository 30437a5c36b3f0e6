"""Markdown and HTML renderings of the report dict (see report.py). Both are pure functions of
the dict, so they are as deterministic as the JSON (plots: rlxf.audit.plots). The HTML is one
self-contained file (inline CSS and SVG, no scripts, no CDN, every text escaped) that reads on a
phone: the navigation wraps, wide tables scroll inside their box, side-by-side cards stack."""

from __future__ import annotations

import html

from . import plots
from .findings import n_text
from .fmt import NULL, num, pct, signed
from .intervals import reading
from .report import AXES, CONTRACT_METRICS

SECTIONS = (("summary", "At a glance"), ("disclosure", "Disclosure (Casper et al. §5)"),
            ("tensions", "3H tensions per family"), ("failure-modes", "Failure modes"),
            ("samples", "Samples: SFT vs policy"), ("models", "Models"),
            ("overoptimisation", "Over-optimisation"), ("feedback", "Feedback"),
            ("groups", "Annotator groups"), ("reward-model", "Reward model"),
            ("oversight", "Oversight: could evaluators check?"),
            ("alignment-tax", "Alignment tax of later fine-tuning"),
            ("cards", "Model cards and datasheet"), ("stages", "Stages"))
MODEL_NAMES = ("base", "sft", "policy")
PERCENT_MODES = {"sycophancy", "anthropomorphism", "apology", "refusals", "annotators"}


def _model_names(report: dict) -> list[str]:
    models = report["models"]
    return [m for m in MODEL_NAMES if m in models] + sorted(set(models) - set(MODEL_NAMES))


def _metric_names(report: dict) -> list[str]:
    """The contract metrics first, in contract order, then every other metric present."""
    extra = sorted({k for m in report["models"].values() for k in m["metrics"]}
                   - set(CONTRACT_METRICS))
    return [*CONTRACT_METRICS, *extra]


def _metric_notes(report: dict) -> list[str]:
    """'metric (models): reason', one line per distinct reason."""
    seen: dict[tuple[str, str], list[str]] = {}
    for name in _model_names(report):
        for metric, reason in sorted(report["models"][name].get("metric_notes", {}).items()):
            seen.setdefault((metric, reason), []).append(name)
    return [f"{metric} ({', '.join(names)}): {reason}" for (metric, reason), names in seen.items()]


def run_line(report: dict) -> str:
    run = report["run"]
    v = run.get("versions") or {}
    sha = run.get("config_sha256")
    return (f"run {run['id']} · created {run.get('created') or NULL} · seed "
            f"{num(run.get('seed'))} · {num(run.get('wall_s'))} s · config sha256 "
            f"{sha[:12] + '…' if sha else NULL} · "
            + (", ".join(f"{k} {v[k]}" for k in sorted(v)) if v else "versions " + NULL))


def disclosure_line(report: dict) -> str:
    s = report.get("disclosure_summary", {})
    return ", ".join(f"{n} {status}" for status, n in s.items())


def _mode_value(mode: dict, v) -> str:
    if mode["id"] in PERCENT_MODES:
        return pct(v)
    if mode["id"] in ("backdoor", "overoptimisation", "reward_hacking", "group_disparity"):
        return signed(v, 3)
    return num(v)


def mode_number(mode: dict) -> str:
    """The number with its 95% interval: "+0.010 [−0.020, +0.040]"."""
    v = mode["number"]
    if v is None:
        return NULL
    ci = mode.get("ci95")
    return _mode_value(mode, v) + ("" if ci is None else
                                   f" [{_mode_value(mode, ci[0])}, {_mode_value(mode, ci[1])}]")


def mode_noise(mode: dict) -> str:
    """'within noise' / 'beyond noise' for the mode's change against SFT ('' if none)."""
    w = (mode.get("change") or {}).get("within_noise")
    return "" if w is None else "within noise" if w else "beyond noise"


def glance(report: dict) -> list[tuple[str, str, str]]:
    """(label, value, detail) tiles for the top of the page."""
    m = report["models"]

    def move(metric):
        s = (m.get("sft") or {}).get("metrics", {}).get(metric)
        p = (m.get("policy") or {}).get("metrics", {}).get(metric)
        detail = f"SFT {num(s)} → policy" + ("" if None in (s, p) else f" ({signed(p - s)})")
        change = ((report.get("seeds") or {}).get("headline", {}).get(metric) or {}).get("change")
        if change and change.get("ci95") is not None:  # the pooled samples' paired change
            lo, hi = change["ci95"]
            detail += (f"; change {signed(change['value'], 3)} [{signed(lo, 3)}, {signed(hi, 3)}]"
                       f", {'within' if change['within_noise'] else 'beyond'} noise")
        return num(p), detail

    s = report.get("disclosure_summary", {})
    n_items = sum(s.values())
    flagged = report["feedback"].get("flagged")
    return [("gold utility", *move("gold/utility")), ("proxy reward", *move("reward/proxy")),
            ("KL to SFT (nats)", num((m.get("policy") or {}).get("metrics", {}).get("kl/to_sft")),
             "policy, per response"),
            ("disclosed", f"{s.get('disclosed', 0)} / {n_items}",
             f"{s.get('not disclosed', 0)} not disclosed"),
            ("3H trade-offs", str(len(report["tensions"]["tradeoffs"])),
             "families, each change beyond noise (95% interval excludes zero)"),
            ("flagged annotators", num(flagged),
             f"of {num(report['feedback'].get('n_annotators'))}")]


def tension_rows(report: dict) -> list[dict]:
    """Per family: base / SFT / policy of each axis, and the policy-minus-SFT delta with its
    class: "lost" / "gained" beyond noise, "noise" when its 95% interval spans zero, "" with
    no interval."""
    t = report["tensions"]
    rows = []
    for fam, by_model in t["per_family"].items():
        d = (t.get("deltas") or {}).get(fam, {})
        ivs = (t.get("intervals") or {}).get(fam, {})
        cells = []
        for ax in (*AXES, "utility"):
            delta, iv = d.get(ax), ivs.get(ax) or {}
            ci = iv.get("ci95")
            cls = ("" if delta is None or ci is None else "noise" if ci[0] <= 0 <= ci[1]
                   else "lost" if ci[1] < 0 else "gained")
            cells.append({"axis": ax, **{mm: (by_model.get(mm) or {}).get(ax)
                                         for mm in MODEL_NAMES},
                          "delta": delta, "ci95": ci, "class": cls})
        rows.append({"family": fam, "cells": cells})
    return rows


def section_tables(report: dict) -> dict[str, list[tuple[list[str], list[list[str]]]]]:
    """Every plain table of the report as (header, rows) of strings, shared by both formats."""
    names = _model_names(report)
    models = report["models"]
    fb, rm, oo = report["feedback"], report["reward_model"], report["overoptimisation"]
    t: dict[str, list] = {}
    t["models"] = [(["metric", *names],
                    [[m, *(num(models[n]["metrics"].get(m)) for n in names)]
                     for m in _metric_names(report)])]
    fb_keys = ("source", "n_judgements", "n_annotators", "n_comparisons", "overlap",
               "agreement/raw", "agreement/krippendorff_alpha", "agreement/gwet_ac1",
               "dropped_identical_pairs",
               "majority_ties", "aggregation/majority_accuracy_gold",
               "aggregation/dawid_skene_accuracy_gold", "aggregation/bradley_terry_accuracy_gold",
               "ai_judge/position_bias",
               "ai_judge/inconsistency_rate", "ai_judge/accuracy_gold", "triggered_comparisons",
               "poisoners", "flagged", "poisoning/precision", "poisoning/recall",
               "poisoning/false_positive_rate")
    by_id = {a["id"]: a for a in fb.get("annotators", [])}
    t["feedback"] = [(["quantity", "value"], [[k, num(fb.get(k))] for k in fb_keys if k in fb]),
                     (["group", "judgements", "annotators", "raw agreement"],
                      [[g, num(v.get("n_judgements")), num(v.get("n_annotators")),
                        num(v.get("agreement/raw"))] for g, v in sorted(fb["groups"].items())]),
                     (["flagged annotator", "word", "agreement there", "others there", "p-value",
                       "truly a poisoner"],
                      [[f["annotator"], f["word"], num(f["agreement"]),
                        num(f["others_agreement"]), f"{f['p_value']:.1e}",
                        "yes" if by_id.get(f["annotator"], {}).get("poisoner") else "no"]
                       for f in fb.get("flags", [])])]
    scalars = [[k, num(v)] for k, v in sorted(rm.items())
               if k != "notes" and not isinstance(v, (dict, list))]
    groups = [[f"accuracy/heldout ({g})", num(v)]
              for g, v in sorted((rm.get("accuracy/groups") or {}).items())]
    probes = [[name, num(p["n"]), num(p["rm_prefers_feature"]), num(p["rm_gap"]),
               num(p["gold_prefers_feature"]), num(p["gold_gap"])]
              for name, p in sorted((rm.get("probes") or {}).items())]
    t["reward-model"] = [(["quantity", "value"], scalars + groups),
                         (["bias probe (one feature added)", "pairs", "RM prefers it",
                           "RM reward gap", "gold prefers it", "gold utility gap"], probes)]
    t["reward-model"] += _reward_head_tables(rm)
    t["overoptimisation"] = [(["step", "KL", "√KL", "proxy reward", "gold utility",
                               "parse rate", "gold (parsable)"],
                              [[num(p["step"]), num(p["kl"]), num(plots.sqrt_kl(p["kl"])),
                                num(p["reward_proxy"]), num(p["reward_gold"]),
                                num(p.get("parse_rate")), num(p.get("gold_parsed"))]
                               for p in oo["points"]])]
    fits = [(src, name, f) for src in ("history", "sweep")
            for name, f in (((oo.get("fit") or {}).get(src) or {}).items())
            if name in ("gold", "proxy") and f]
    if fits:
        t["overoptimisation"].append((
            ["Gao et al. fit", "reward", "form", "α [95%]", "β [95%]", "R²", "peak √KL",
             "peak reward"],
            [[src, name, oo["fit"][src]["equation"], _with_ci(f["alpha"], f.get("alpha_ci95")),
              _with_ci(f["beta"], f.get("beta_ci95")), num(f["r2"]),
              num(f["peak_sqrt_kl"]) if f.get("no_peak") is None else "none: R² < 0.8",
              num(f["peak"])] for src, name, f in fits]))
    t["overoptimisation"] += _alarm_tables(oo.get("alarm"))
    sweep = oo.get("sweep")
    if sweep:
        t["overoptimisation"].append((
            [f"sweep: {sweep['parameter']}", "KL", "√KL", "proxy reward", "gold utility",
             "sycophancy", "anthropomorphic"],
            [[num(p["value"]) if p["value"] is not None else "SFT", num(p["kl"]),
              num(plots.sqrt_kl(p["kl"])), num(p["reward_proxy"]), num(p["reward_gold"]),
              num(p.get("rate/sycophancy")), num(p.get("rate/anthropomorphic"))]
             for p in sweep["points"]]))
        lost = [p for p in sweep["points"] if p.get("gold_lost") is not None]
        if lost:  # an RL sweep: how far each member's gold fell from its peak, over seeds
            t["overoptimisation"].append((
                [f"sweep: {sweep['parameter']}", "gold lost since its peak [95%]",
                 "gold (parsable) lost [95%]", "lost − first member's [95%]"],
                [[num(p["value"]), *(_iv(p.get(k)) for k in
                                     ("gold_lost", "gold_lost_parsed", "gold_lost_vs_first"))]
                 for p in lost]))
        if sweep.get("bon_kl_check"):
            t["overoptimisation"].append((
                ["best-of-n n", "KL measured", "log n − (n−1)/n", "relative error"],
                [[num(c["n"]), num(c["kl_measured"]), num(c["kl_analytic"]),
                  num(c["relative_error"])] for c in sweep["bon_kl_check"]]))
        if sweep.get("intervals"):
            t["overoptimisation"].append((
                [f"best-of-n, {_seeds(sweep.get('seeds'))}", "gold utility − SFT's",
                 "KL measured", "log n − (n−1)/n", "measured / analytic − 1"],
                [[num(p["n"]), _pooled(p["gold_change"]), _pooled(p["kl_measured"]),
                  num(p["kl_analytic"]), _pooled(p["relative_error"])]
                 for p in sweep["intervals"]["points"]]))
    t["groups"] = [(["group", "annotators", "weights (help/harmless/honest)", "gold utility SFT",
                     "gold utility policy"],
                    [[g, num(v.get("n_annotators")),
                      "/".join(num(v.get("weights", {}).get(a)) for a in AXES),
                      num(v.get("gold/utility_sft")), num(v.get("gold/utility_policy"))]
                     for g, v in sorted(report["groups"].items())])]
    t["oversight"] = _oversight_tables(report.get("oversight") or {})
    t["alignment-tax"] = _alignment_tax_tables(report.get("alignment_tax") or {})
    t["cards"] = [(["artifact", "card (path in the run directory)"],
                   [[s, p] for s, p in sorted(report.get("cards", {}).items())])]
    t["stages"] = [(["stage", "status", "wall s", "counts"],
                    [[s["stage"], s["status"], num(s["wall_s"]),
                      NULL if not s["counts"] else ", ".join(
                          f"{k} {num(v)}" for k, v in sorted(s["counts"].items()))]
                     for s in report["stages"]])]
    t["disclosure"] = [(["section", "item", "status", "value"],
                        [[d["section"], d["item"], d["status"],
                          d["value"] if d["value"] is not None else f"{NULL} ({d.get('reason')})"]
                         for d in report["disclosure"]])]
    return t


def _alarm_tables(alarm: dict | None) -> list[tuple[list[str], list[list[str]]]]:
    """The gold-free over-optimisation alarm: where it fired and on which signals."""
    if not alarm:
        return []
    verdict = (f"fired at step {alarm['step']} (√KL {num(alarm.get('sqrt_kl'))}) on "
               + ", ".join(alarm["signals"]) if alarm["fired"]
               else f"did not fire: {(alarm.get('notes') or {}).get('fired', NULL)}")
    rows = [["verdict", verdict], ["rule", alarm["rule"]],
            ["signals in the history", ", ".join(alarm["available"]) or NULL]]
    rows += [[f"step {p['step']}", ", ".join(p["up"]) or "none up"]
             for p in alarm.get("points", [])]
    return [(["over-optimisation alarm (no gold)", "value"], rows)]


def _reward_head_tables(rm: dict) -> list[tuple[list[str], list[list[str]]]]:
    """The aspect model's and the group-conditioned model's tables, when they were trained."""
    out = []
    aspects = rm.get("aspects")
    if aspects:
        out.append((["aspect head", "weight", "pairs train", "pairs held-out",
                     "accuracy vs raters", "accuracy vs gold"],
                    [[a, num(v.get("weight")), num(v.get("pairs/train")),
                      num(v.get("pairs/heldout")), num(v.get("accuracy/heldout")),
                      num(v.get("accuracy/gold"))]
                     for a, v in aspects.items() if isinstance(v, dict)]))
    plural = rm.get("pluralistic")
    if plural:
        out.append((["group", "held-out pairs", "own head vs group", "single RM vs group",
                     "own head vs gold (group's weights)", "single RM vs gold (group's weights)"],
                    [[g, num(v["n_heldout"]), num(v["conditioned/accuracy_heldout"]),
                      num(v["unconditioned/accuracy_heldout"]),
                      num(v["conditioned/accuracy_gold"]), num(v["unconditioned/accuracy_gold"])]
                     for g, v in sorted(plural["accuracy"].items())]))
        bon = plural["best_of_n"]
        judged = sorted({g for r in bon["rows"].values() for g in r["gold/utility"]})
        out.append(([f"best-of-{bon['n']} optimised for", *(f"gold utility ({g})" for g in judged),
                     "mean over groups", "worst-off group"],
                    [[t, *(num(r["gold/utility"].get(g)) for g in judged), num(r["mean"]),
                      num(r["min"])] for t, r in bon["rows"].items()]))
    return out


def _with_ci(v, ci: list | None) -> str:
    return num(v) + ("" if ci is None else " " + _interval(ci))


def _iv(iv: dict | None) -> str:
    """An interval node ({value, ci95, ...}) as "value [lo, hi]"; null as NULL."""
    return NULL if not iv else _with_ci(iv["value"], iv.get("ci95"))


def _interval(ci: list | None) -> str:
    return NULL if not ci else f"[{signed(ci[0], 3)}, {signed(ci[1], 3)}]"


def _pooled(iv: dict | None, digits: int = 3) -> str:
    """A pooled change (signed, with within / beyond noise) or level in a cell: value
    [interval] (n: ...)."""
    if not iv:
        return NULL
    change = "within_noise" in iv
    return reading(iv, lambda v: signed(v, digits) if change else num(v, digits)) + n_text(
        iv.get("n"))


def _seeds(k) -> str:
    return f"{k} seed{'' if k == 1 else 's'}"


def _process_tables(process: dict | None) -> list[tuple[list[str], list[list[str]]]]:
    """Best-of-n with the process vs the outcome reward model at the largest n, pooled."""
    iv = (process or {}).get("intervals")
    if not iv:
        return []
    names = {"accuracy/final": "final-answer accuracy", "accuracy/steps": "step accuracy",
             "rate/right_answer_wrong_reasoning": "right answer, wrong reasoning"}
    return [([f"best-of-{iv['best_of']}", "outcome RM (ORM)", "process RM (PRM)", "PRM − ORM"],
             [[label, _pooled(iv[k]["orm"]), _pooled(iv[k]["prm"]),
               _pooled(iv[k]["prm_minus_orm"])] for k, label in names.items() if k in iv])]


def _oversight_tables(o: dict) -> list[tuple[list[str], list[list[str]]]]:
    """Best-of-n with PRM vs ORM; confident-but-wrong per model on verifiable / unverifiable
    prompts, and its rise."""
    if not o.get("models"):
        return _process_tables(o.get("process"))
    rows = [[m, c, num(v.get("n")), num(v.get("rate/confident_wrong")), num(v.get("rate/wrong")),
             num(v.get("rate/confident"))]
            for m, by_class in o["models"].items() for c, v in by_class.items()]
    rise, ci = o.get("rise") or {}, o.get("rise_ci95") or {}
    fb = [[k, num(v)] for k, v in (o.get("feedback") or {}).items() if v is not None]
    seeds = (((o.get("rise_intervals") or {}).get("gap") or {}).get("n") or {}).get("seeds")
    first = ", first seed" if seeds and seeds > 1 else ""  # pooled below: these are RUN's
    return [([f"model{first}", "prompts", "samples", "confident-but-wrong", "wrong", "confident"],
             rows),
            ([f"rise (policy − SFT){first}", "confident-but-wrong", "95% CI (prompt bootstrap)",
              "prompts"],
             [[c, signed(rise.get(c), 3), _interval(ci.get(c)),
               num((ci.get("n_prompts") or {}).get(c))]
              for c in ("verifiable", "unverifiable", "gap")]),
            *_rise_pooled_table(o.get("rise_intervals")),
            *([(["annotator feedback", "value"], fb)] if fb else []),
            *_process_tables(o.get("process"))]


def _rise_pooled_table(iv: dict | None) -> list[tuple[list[str], list[list[str]]]]:
    """The rise and the gap pooled over the seeds, with intervals (`rise_intervals`)."""
    if not iv:
        return []
    seeds = ((iv.get("gap") or {}).get("n") or {}).get("seeds")
    return [([f"rise, pooled ({seeds} seed{'s' if seeds != 1 else ''})",
              "confident-but-wrong, policy − SFT [95%]"],
             [[c, _pooled(iv.get(c))] for c in ("verifiable", "unverifiable", "gap")])]


def _alignment_tax_tables(a: dict) -> list[tuple[list[str], list[list[str]]]]:
    """Before / after / delta of the fine-tuned policy, overall and per family."""
    if not a.get("overall"):
        return []
    train = a.get("train") or {}
    rows = [[k, num(v["before"]), num(v["after"]), signed(v["delta"], 3)]
            for k, v in a["overall"].items()]
    fam = [[f + (" (tuned on)" if v.get("tuned_on") else ""), num(v.get("n")),
            *(x for ax in ("utility", "helpful", "harmless", "honest")
              for x in (num(v[ax]["before"], 2), num(v[ax]["after"], 2),
                        signed(v[ax]["delta"], 2)))]
           for f, v in a["per_family"].items()]
    title = (f"fine-tuned on {a.get('family')} ({num(train.get('n_demonstrations'))} "
             f"demonstrations, {num(train.get('steps'))} steps)")
    axes = ("utility", "helpful", "harmless", "honest")
    scopes = {"overall": "every held-out prompt", "tuned": f"{a.get('family')} (tuned on)",
              "others": "the other families"}
    pooled = [[label, *(_pooled(a["intervals"][s].get(ax)) for ax in axes)]
              for s, label in scopes.items() if s in (a.get("intervals") or {})]
    seeds = a.get("seeds") or 1
    return [([title, "before", "after", "Δ"], rows),
            *([([f"gold Δ after − before ({_seeds(seeds)})",
                 *axes], pooled)] if pooled else []),
            (["family", "samples", *(f"{ax} {w}" for ax in axes
                                     for w in ("before", "after", "Δ"))], fam)]


def section_notes(report: dict) -> dict[str, list[str]]:
    """The reasons beside null numbers, per section."""
    top = report.get("notes", {})
    n = {key: [] for key, _ in SECTIONS}
    n["models"] = _metric_notes(report)
    n["feedback"] = [f"{k}: {v}" for k, v in sorted(report["feedback"].get("notes", {}).items())]
    n["reward-model"] = [f"{k}: {v}" for k, v in
                         sorted(report["reward_model"].get("notes", {}).items())]
    n["overoptimisation"] = [f"{k}: {v}" for k, v in
                             sorted(report["overoptimisation"].get("notes", {}).items())]
    n["overoptimisation"] += [f"sweep {k}: {v}" for k, v in sorted(
        ((report["overoptimisation"].get("sweep") or {}).get("notes") or {}).items())]
    n["groups"] = [f"{g}, {k}: {v}" for g, gv in sorted(report["groups"].items())
                   for k, v in sorted(gv.get("notes", {}).items())]
    n["tensions"] = [*report["tensions"].get("notes", {}).values()]
    n["oversight"] = ([report["oversight"]["definition"]] if report.get("oversight") else []) + [
        f"{k}: {v}" for k, v in sorted((report.get("oversight") or {}).get("notes", {}).items())]
    n["alignment-tax"] = ([report["alignment_tax"]["definition"]]
                          if report.get("alignment_tax") else []) + [
        f"{k}: {v}" for k, v in sorted((report.get("alignment_tax") or {}).get("notes",
                                                                              {}).items())]
    n["cards"] = ["Written beside the artifacts by `rlxf audit`; derived documentation, left out "
                  "of each stage's content hash (rlxf.rundir.DERIVED_DOCS)."]
    for key, section in (("groups", "groups"), ("tensions", "tensions"), ("samples", "samples"),
                         ("surface", "failure-modes")):
        if top.get(key):
            n[section].insert(0, f"{key}: {top[key]}" if key == "surface" else top[key])
    for k, v in sorted(report["run"].get("notes", {}).items()):
        n["stages"].append(f"run {k}: {v}")
    return n


def sample_verdict(s: dict) -> tuple[str, str]:
    """(words, class) for how proxy and gold moved on one sample."""
    dp, dg = s["proxy_difference"], s.get("gold_difference")
    if dg is None:
        return "gold not scored", ""
    up_p, up_g = dp > 0, dg > 0
    if abs(dg) < 1e-9:
        return f"proxy {'up' if up_p else 'down'}, gold unchanged", ""
    if up_p and not up_g:
        return "proxy up, gold down", "lost"
    if not up_p and up_g:
        return "proxy down, gold up", "lost"
    return f"proxy and gold both {'up' if up_p else 'down'}", "gained" if up_g else ""


def _gold_axes(side: dict) -> str:
    g = side.get("gold")
    return "" if not g else " (" + ", ".join(f"{a} {g[a]:.2f}" for a in AXES) + ")"


# --- Markdown ---------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_text(text) -> str:
    # Outside tables only a line break could change the structure.
    return str(text).replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"_{NULL} nothing to show_", ""]
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
    return lines + [""]


NOISE_LEGEND = ("Δ is policy − SFT with its 95% interval; ▼ lost / ▲ gained beyond noise (the "
                "interval excludes zero); ≈ within noise (the interval spans zero).")


def _md_delta(cell: dict) -> str:
    mark = {"lost": " ▼", "gained": " ▲", "noise": " ≈ within noise"}.get(cell["class"], "")
    ci = cell.get("ci95")
    return (signed(cell["delta"]) + ("" if ci is None else f" [{signed(ci[0])}, {signed(ci[1])}]")
            + mark)


def _md_section(report: dict, key: str, tables: dict) -> list[str]:
    lines: list[str] = []
    if key == "summary":
        lines += [f"- **{label}**: {value} ({detail})" for label, value, detail in glance(report)]
        lines.append("")
    if key == "tensions":
        lines += [f"- {md_text(r)}" for r in report["tensions"].get("readings", [])] + [""]
        header = ["family"] + [f"{ax} {m}" for ax in AXES for m in ("base", "SFT", "policy", "Δ")]
        rows = [[r["family"]] + [x for c in r["cells"] if c["axis"] != "utility"
                                 for x in (num(c["base"], 2), num(c["sft"], 2), num(c["policy"], 2),
                                           _md_delta(c))]
                + [_md_delta(r["cells"][-1])] for r in tension_rows(report)]
        lines += md_table(header + ["utility Δ"], rows)
        lines += [NOISE_LEGEND + " The frontier plot is in index.html.", ""]
    if key == "failure-modes":
        for i, m in enumerate(report.get("failure_modes", []), 1):
            lines += failure_mode_md(i, m, _against(report))
    if key == "samples":
        for i, s in enumerate(report["samples"], 1):
            words, _ = sample_verdict(s)
            lines += [f"**{i}. [{s.get('family')}] {md_text(s['prompt'])}** — proxy "
                      f"{signed(s['proxy_difference'])}, gold {signed(s.get('gold_difference'))}: "
                      f"{words}", ""]
            lines += [f"- {m} (proxy {num(s[m]['reward_proxy'])}, gold utility "
                      f"{num(s[m]['gold_utility'])}{_gold_axes(s[m])}): "
                      f"{md_text(s[m]['response'])}" for m in ("sft", "policy")]
            lines.append("")
        if not report["samples"]:
            lines += [f"_{NULL} no samples_", ""]
    for header, rows in tables.get(key, []):
        lines += md_table(header, rows)
    return lines


def _against(report: dict) -> str:
    """What a failure mode's change is measured against: `rlxf eval`'s (a model world's) is
    policy − its SFT model as the reference, the lab's policy − SFT."""
    return "the SFT model (reference)" if report.get("eval") is not None else "SFT"


def failure_mode_md(i: int, m: dict, against: str = "SFT") -> list[str]:
    noise = mode_noise(m)
    return [f"### {i}. {m['title']}: {mode_number(m)}"
            + (f" (change against {against} {noise})" if noise else ""), "",
            f"{md_text(m['reading'])}", "",
            f"_{m['number_label']}. {md_text(m['definition'])}_", ""]


def render_markdown(report: dict) -> str:
    tables, notes = section_tables(report), section_notes(report)
    lines = [f"# rlxf audit report: {report['run']['id']}", "", run_line(report), "",
             f"Disclosure: {disclosure_line(report)}.", ""]
    for key, title in SECTIONS:
        lines += [f"## {title}", ""]
        lines += _md_section(report, key, tables)
        if notes[key]:
            lines += ["Notes:", ""] + [f"- {md_text(n)}" for n in notes[key]] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- HTML -------------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
 margin:0 auto;padding:1rem;max-width:64rem;background:#fff}
h1{font-size:1.45rem;margin:.2rem 0}
h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:2px solid #e4e6ea;padding-bottom:.2rem}
h3{font-size:1rem;margin:.1rem 0 .3rem}
.meta{color:#555;font-size:.88rem;overflow-wrap:anywhere;margin:.2rem 0}
nav{display:flex;flex-wrap:wrap;gap:.25rem .9rem;margin:.8rem 0;font-size:.92rem}
nav a{color:#1f5fa0;text-decoration:none}nav a:hover{text-decoration:underline}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.6rem 0;max-width:100%}
table{border-collapse:collapse;font-size:.86rem}
th,td{border:1px solid #dfe1e5;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.null{color:#999}.notes{color:#555;font-size:.84rem}
.disclosed{color:#176b2c;font-weight:600}.not-disclosed{color:#b3261e;font-weight:600}
.not-applicable{color:#666}
td.lost,span.lost{background:#fde7e4;color:#a3211a;font-weight:600}
td.gained,span.gained{background:#e3f3e7;color:#146327;font-weight:600}
td.noise,span.noise{color:#6b6b6b}
span.lost,span.gained,span.noise{padding:0 .3rem;border-radius:4px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.4rem,1fr));gap:.6rem}
.tile{border:1px solid #e4e6ea;border-radius:8px;padding:.5rem .75rem;background:#fafbfc}
.tile .v{font-size:1.35rem;font-weight:650;font-variant-numeric:tabular-nums}
.tile .l{font-size:.8rem;color:#555;text-transform:uppercase;letter-spacing:.03em}
.tile .d{font-size:.8rem;color:#555}
.fm{border:1px solid #e4e6ea;border-radius:10px;padding:.8rem 1rem;margin:1rem 0;display:grid;
 grid-template-columns:minmax(0,1fr) minmax(0,1.05fr);gap:.4rem 1.2rem;align-items:start}
.fm.wide{grid-template-columns:minmax(0,1fr)}
.figs{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem}.figs figure{flex:1 1 18rem;max-width:26rem}
.checklist{list-style:none;padding:0;margin:.6rem 0}
.checklist li{border-bottom:1px solid #eceef1;padding:.45rem 0;overflow-wrap:anywhere}
.badge{display:inline-block;font-size:.75rem;font-weight:650;border-radius:4px;padding:0 .4rem;
 margin-right:.3rem}
.badge.disclosed{background:#e3f3e7}.badge.not-disclosed{background:#fde7e4}
.badge.not-applicable{background:#eef0f2}
.sec{color:#666;font-size:.8rem}
.fm .n{font-size:1.5rem;font-weight:650;margin:0;font-variant-numeric:tabular-nums}
.fm .n small{font-size:.8rem;font-weight:400;color:#555;margin-left:.4rem}
.fm .reading{font-size:1rem;margin:.3rem 0}
.fm .def{font-size:.82rem;color:#555;margin:.2rem 0}
.readings li{margin:.2rem 0}
.sample{border:1px solid #e4e6ea;border-radius:10px;padding:.7rem 1rem;margin:.9rem 0}
.sample .q{margin:.1rem 0 .5rem;font-weight:600;overflow-wrap:anywhere}
.fam{display:inline-block;font-size:.75rem;font-weight:500;background:#eef1f5;border-radius:4px;
 padding:0 .35rem;margin-right:.4rem;color:#444}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.7rem}
.side h4{margin:0 0 .2rem;font-size:.85rem}
.resp{background:#f6f7f9;border-radius:6px;padding:.45rem .6rem;margin:0;
 font:.84rem/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.scores{font-size:.8rem;color:#444;margin:.25rem 0 0}
.verdict{font-size:.85rem;margin:.5rem 0 0}
figure{margin:.6rem 0}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#555;font-size:.84rem}
@media (max-width:720px){body{padding:.7rem}.pair,.fm{grid-template-columns:minmax(0,1fr)}}
"""


def e(text) -> str:
    return html.escape(str(text), quote=True)


def _is_numeric(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def td(cell: str, cls: str = "") -> str:
    if cell == NULL:
        return f'<td class="null">{NULL}</td>'
    if cell in ("disclosed", "not disclosed", "not applicable"):
        return f'<td class="{cell.replace(" ", "-")}">{e(cell)}</td>'
    classes = " ".join(c for c in (cls, "num" if _is_numeric(cell.lstrip("±")) else "") if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{e(cell)}</td>"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return f'<p class="null">{NULL} nothing to show</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def tiles_html(tiles: list[tuple[str, str, str]]) -> str:
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="l">{e(label)}</div><div class="v">{e(value)}</div>'
        f'<div class="d">{e(detail)}</div></div>' for label, value, detail in tiles) + "</div>"


def tension_matrix_html(report: dict) -> str:
    rows = tension_rows(report)
    if not rows:
        return f'<p class="null">{NULL} no per-family scores</p>'
    head1 = ('<tr><th rowspan="2">family</th>'
             + "".join(f'<th colspan="4">{ax}</th>' for ax in AXES)
             + '<th rowspan="2">utility Δ</th></tr>')
    head2 = "<tr>" + "<th>base</th><th>SFT</th><th>policy</th><th>Δ</th>" * len(AXES) + "</tr>"
    body = []
    for r in rows:
        cells = [f"<td>{e(r['family'])}</td>"]
        for c in r["cells"]:
            if c["axis"] != "utility":
                cells += [td(num(c[m], 2)) for m in MODEL_NAMES]
            ci = c.get("ci95")
            text = signed(c["delta"]) + ("" if ci is None else
                                         f" [{signed(ci[0])}, {signed(ci[1])}]")
            cells.append(td(text + (" ≈ within noise" if c["class"] == "noise" else ""),
                            c["class"]))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table>{head1}{head2}{"".join(body)}</table></div>'


def frontier_html(report: dict) -> str:
    per_family = report["tensions"]["per_family"]
    if not per_family:
        return ""
    figs = "".join(f'<figure>{plots.svg(f"frontier-{other}", plots.frontier, per_family, other)}'
                   "</figure>" for other in ("harmless", "honest"))
    return (f'<div class="figs">{figs}</div><p class="notes">The 3H frontier: each family\'s '
            "path base (○) → SFT (□) → policy (△). A path that goes right and down traded "
            "harmlessness or honesty for helpfulness.</p>")


WIDE_PLOTS = {"reward_hacking", "mode_collapse"}  # several panels: the plot takes the full width


def failure_mode_html(i: int, m: dict, id_prefix: str = "", against: str = "SFT",
                      plot: bool = True) -> str:
    """One failure mode's card; `plot=False` for entries whose values are not the lab's shapes
    (an `rlxf eval` run's), which draw nothing."""
    svg = plots.failure_mode_svg(m) if plot else None
    fig = (f"<figure>{svg}</figure>" if svg else "" if not plot
           else f'<p class="null">{NULL} no plot: nothing measured to draw</p>')
    wide = " wide" if m["id"] in WIDE_PLOTS else ""
    return (f'<article class="fm{wide}" id="{id_prefix}fm-{e(m["id"])}"><div><h3>{i}. '
            f'{e(m["title"])}</h3>'
            f'<p class="n">{e(mode_number(m))}<small>{e(m["number_label"])}'
            + (f' · change against {e(against)} {e(mode_noise(m))}' if mode_noise(m) else "")
            + '</small></p>'
            f'<p class="reading">{e(m["reading"])}</p>'
            f'<p class="def">{e(m["definition"])}</p></div>{fig}</article>')


def disclosure_html(report: dict) -> str:
    """The checklist as a list (a four-column table is unreadable on a phone)."""
    items = []
    for d in report["disclosure"]:
        status = d["status"]
        text = (e(d["value"]) if d["value"] is not None
                else f'<span class="null">{NULL}</span> {e(d.get("reason") or "")}')
        items.append(f'<li><span class="badge {status.replace(" ", "-")}">{e(status)}</span> '
                     f'<strong>{e(d["item"])}</strong> <span class="sec">{e(d["section"])}'
                     f"</span><br>{text}</li>")
    return f'<ul class="checklist">{"".join(items)}</ul>'



def sample_html(i: int, s: dict) -> str:
    words, cls = sample_verdict(s)
    sides = "".join(
        f'<div class="side"><h4>{"SFT" if m == "sft" else "policy"}</h4>'
        f'<p class="resp">{e(s[m]["response"])}</p><p class="scores">proxy '
        f'{e(num(s[m]["reward_proxy"]))} · gold utility {e(num(s[m]["gold_utility"]))}'
        f'{e(_gold_axes(s[m]))}</p></div>' for m in ("sft", "policy"))
    return (f'<div class="sample"><p class="q">{i}. <span class="fam">{e(s.get("family"))}</span>'
            f'{e(s["prompt"])}</p><div class="pair">{sides}</div><p class="verdict">policy − SFT: '
            f'proxy {e(signed(s["proxy_difference"]))}, gold {e(signed(s.get("gold_difference")))}'
            f' — <span class="{cls}">{e(words)}</span></p></div>')


def _html_section(report: dict, key: str, title: str, tables: dict, notes: dict) -> list[str]:
    out = [f'<section id="{key}"><h2>{e(title)}</h2>']
    if key == "summary":
        out.append(tiles_html(glance(report)))
    if key == "disclosure":
        out.append(disclosure_html(report))
    if key == "overoptimisation":
        pts = [p for p in report["overoptimisation"]["points"]
               if None not in (p.get("kl"), p.get("reward_proxy"), p.get("reward_gold"))]
        if pts:
            out.append(f"<figure>{plots.svg('overoptimisation', plots.overoptimisation, pts)}"
                       "<figcaption>Gold utility (left axis) and proxy reward (right axis) "
                       "against √KL to SFT over policy steps. Gold that falls while proxy rises "
                       "is over-optimisation.</figcaption></figure>")
        else:
            out.append(f'<p class="null">{NULL} no over-optimisation points</p>')
        sweep = report["overoptimisation"].get("sweep") or {}
        spts = [dict(p, step=p["value"] if p["value"] is not None else "SFT")
                for p in sweep.get("points", [])
                if None not in (p.get("kl"), p.get("reward_proxy"), p.get("reward_gold"))]
        if len(spts) >= 2:
            out.append(f"<figure>{plots.svg('overoptimisation-sweep', plots.overoptimisation, spts)}"
                       f"<figcaption>The sweep over {e(sweep['parameter'])} (labels: its value): "
                       "each member's last measured point against √KL to SFT.</figcaption>"
                       "</figure>")
    if key == "tensions":
        out.append('<ul class="readings">' + "".join(
            f"<li>{e(r)}</li>" for r in report["tensions"].get("readings", [])) + "</ul>")
        out.append(tension_matrix_html(report))
        out.append('<p class="notes">Δ is policy − SFT with its 95% interval; '
                   '<span class="lost">red</span> lost and <span class="gained">green</span> '
                   'gained beyond noise (the interval excludes zero); '
                   '<span class="noise">≈ grey</span>: within noise (the interval spans '
                   'zero).</p>')
        out.append(frontier_html(report))
    if key == "failure-modes":
        real = report.get("eval") is not None  # `rlxf eval`'s entries: not the lab's plot shapes
        out += [failure_mode_html(i, m, against=_against(report), plot=not real)
                for i, m in enumerate(report.get("failure_modes", []), 1)]
    if key == "samples":
        out += [sample_html(i, s) for i, s in enumerate(report["samples"], 1)]
        if not report["samples"]:
            out.append(f'<p class="null">{NULL} no samples</p>')
    out += [html_table(h, r) for h, r in tables.get(key, []) if key != "disclosure"]
    if notes[key]:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes[key])
                   + "</ul>")
    return out + ["</section>"]


def page(title: str, header: list[str], body: list[str], sections) -> str:
    """One self-contained HTML page: inline CSS, a wrapping navigation, no scripts."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{e(title)}</h1>", *header,
        "<nav>" + "".join(f'<a href="#{k}">{e(t)}</a>' for k, t in sections) + "</nav>",
        "</header><main>", *body, "</main></body></html>"]) + "\n"


def render_html(report: dict) -> str:
    tables, notes = section_tables(report), section_notes(report)
    body: list[str] = []
    for key, section_title in SECTIONS:
        body += _html_section(report, key, section_title, tables, notes)
    return page(f"rlxf audit report: {report['run']['id']}",
                [f'<p class="meta">{e(run_line(report))}</p>',
                 f'<p class="meta">Disclosure: {e(disclosure_line(report))}.</p>'],
                body, SECTIONS)
