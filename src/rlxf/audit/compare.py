"""`rlxf compare RUN_A RUN_B`: the report of two runs side by side, differences highlighted.

A pure function of the two run directories: each report is built as `rlxf audit` builds it (and
nothing is written into either run's stage directories), then every number is paired A / B with
its difference B − A and a verdict: "better" or "worse" where the metric has a direction (a
lower sycophancy rate is better), "changed" where it has none (proxy reward, KL, length), "same"
when the two agree at the precision the report prints (3 decimals).
"""

from __future__ import annotations

from pathlib import Path

from ..rundir import atomic_write_json, atomic_write_text
from .fmt import NULL, num, signed
from .report import AXES, _clean, build_report

HIGHER_BETTER = ("gold/", "accuracy/", "agreement/", "aggregation/", "diversity/",
                 "world/parse_rate", "rate/refusal_harmful", "poisoning/precision",
                 "poisoning/recall", "helpful", "harmless", "honest", "utility")
LOWER_BETTER = ("rate/", "length/fillers", "poisoning/false_positive_rate")
# Failure-mode numbers: which way is better (None: no direction).
MODE_DIRECTION = {"overoptimisation": 1, "reward_hacking": -1, "sycophancy": -1,
                  "anthropomorphism": -1, "apology": -1, "refusals": -1, "mode_collapse": 1,
                  "group_disparity": -1, "backdoor": -1, "annotators": None}
FEEDBACK_KEYS = ("n_judgements", "n_annotators", "n_comparisons", "agreement/raw",
                 "agreement/krippendorff_alpha", "aggregation/majority_accuracy_gold",
                 "aggregation/dawid_skene_accuracy_gold", "poisoners", "flagged",
                 "poisoning/precision", "poisoning/recall", "poisoning/false_positive_rate")


def direction(name: str) -> int | None:
    """+1 when higher is better, -1 when lower is better, None when neither."""
    if name.startswith(HIGHER_BETTER) or name in HIGHER_BETTER:
        return 1
    if name.startswith(LOWER_BETTER):
        return -1
    return None


def pair(a, b, sign: int | None) -> dict:
    """{a, b, difference, verdict} of two numbers (or nulls, or non-numbers)."""
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if not numeric:
        return {"a": a, "b": b, "difference": None,
                "verdict": "same" if a == b else "changed"}
    diff = b - a
    if round(diff, 3) == 0:
        verdict = "same"
    elif sign is None:
        verdict = "changed"
    else:
        verdict = "better" if diff * sign > 0 else "worse"
    return {"a": a, "b": b, "difference": diff, "verdict": verdict}


def _run_head(r: dict) -> dict:
    run = r["run"]
    return {"id": run["id"], "created": run.get("created"), "seed": run.get("seed"),
            "config_sha256": run.get("config_sha256")}


def build_comparison(a: dict, b: dict) -> dict:
    """The comparison of two report dicts (rlxf.audit.report.build_report)."""
    models = {}
    for name in sorted(set(a["models"]) | set(b["models"]),
                       key=lambda n: (("base", "sft", "policy") + (n,)).index(n)):
        ma = (a["models"].get(name) or {}).get("metrics") or {}
        mb = (b["models"].get(name) or {}).get("metrics") or {}
        models[name] = {k: pair(ma.get(k), mb.get(k), direction(k))
                        for k in sorted(set(ma) | set(mb))}
    disclosure = []
    b_items = {(d["section"], d["item"]): d for d in b["disclosure"]}
    for d in a["disclosure"]:
        other = b_items.get((d["section"], d["item"]), {})
        disclosure.append({"section": d["section"], "item": d["item"],
                           "a": d["status"], "b": other.get("status"),
                           "a_value": d["value"], "b_value": other.get("value"),
                           "changed": d["status"] != other.get("status")
                           or d["value"] != other.get("value")})
    b_modes = {m["id"]: m for m in b.get("failure_modes", [])}
    modes = []
    for m in a.get("failure_modes", []):
        o = b_modes.get(m["id"], {})
        modes.append({"id": m["id"], "title": m["title"], "number_label": m["number_label"],
                      **pair(m["number"], o.get("number"), MODE_DIRECTION.get(m["id"])),
                      "a_reading": m["reading"], "b_reading": o.get("reading")})
    tensions = {}
    pa, pb = a["tensions"]["per_family"], b["tensions"]["per_family"]
    for fam in [*pa, *[f for f in pb if f not in pa]]:
        pol_a = (pa.get(fam) or {}).get("policy") or {}
        pol_b = (pb.get(fam) or {}).get("policy") or {}
        tensions[fam] = {ax: pair(pol_a.get(ax), pol_b.get(ax), 1) for ax in (*AXES, "utility")}
    groups = {}
    for g in sorted(set(a["groups"]) | set(b["groups"])):
        ga, gb = a["groups"].get(g) or {}, b["groups"].get(g) or {}
        groups[g] = {k: pair(ga.get(k), gb.get(k), 1)
                     for k in ("gold/utility_sft", "gold/utility_policy")}
    rm_keys = sorted(k for k in set(a["reward_model"]) | set(b["reward_model"])
                     if k != "notes" and not any(isinstance(r["reward_model"].get(k), (dict, list))
                                                 for r in (a, b)))
    out = {
        "schema_version": "1", "a": _run_head(a), "b": _run_head(b),
        "disclosure": disclosure, "models": models, "failure_modes": modes,
        "tensions": tensions, "groups": groups,
        "feedback": {k: pair(a["feedback"].get(k), b["feedback"].get(k), direction(k))
                     for k in FEEDBACK_KEYS},
        "reward_model": {k: pair(a["reward_model"].get(k), b["reward_model"].get(k),
                                 direction(k)) for k in rm_keys},
        "tradeoffs": {"a": a["tensions"].get("readings", []),
                      "b": b["tensions"].get("readings", [])},
    }
    return _clean(out)


def _verdict_counts(cmp: dict) -> dict[str, int]:
    counts = {"better": 0, "worse": 0, "changed": 0, "same": 0}
    for rows in cmp["models"].values():
        for p in rows.values():
            counts[p["verdict"]] += 1
    return counts


# --- rendering ----------------------------------------------------------------------------------

def _cells(p: dict, digits: int = 3) -> list[str]:
    return [num(p["a"], digits), num(p["b"], digits), signed(p["difference"], digits)
            if p["difference"] is not None else ("" if p["verdict"] == "same" else "changed")]


def _tables(cmp: dict) -> dict[str, list[tuple[list[str], list[dict]]]]:
    """Tables as (header, rows); a row is {"cells": [...], "verdict": ...}."""
    t: dict[str, list] = {}
    t["disclosure"] = [(["section", "item", "A", "B"],
                        [{"cells": [d["section"], d["item"], d["a"], d["b"] or NULL],
                          "verdict": "changed" if d["changed"] else "same"}
                         for d in cmp["disclosure"]])]
    t["tensions"] = [(["family", "axis (policy)", "A", "B", "B − A"],
                      [{"cells": [fam, ax, *_cells(p)], "verdict": p["verdict"]}
                       for fam, axes in cmp["tensions"].items() for ax, p in axes.items()])]
    t["models"] = [([f"{name} metric", "A", "B", "B − A"],
                    [{"cells": [k, *_cells(p)], "verdict": p["verdict"]} for k, p in rows.items()])
                   for name, rows in cmp["models"].items()]
    for key in ("feedback", "reward_model"):
        t[key] = [(["quantity", "A", "B", "B − A"],
                   [{"cells": [k, *_cells(p)], "verdict": p["verdict"]}
                    for k, p in cmp[key].items()])]
    t["groups"] = [(["group", "gold utility", "A", "B", "B − A"],
                    [{"cells": [g, k.removeprefix("gold/utility_"), *_cells(p)],
                      "verdict": p["verdict"]} for g, ks in cmp["groups"].items()
                     for k, p in ks.items()])]
    return t


SECTIONS = (("summary", "At a glance"), ("failure-modes", "Failure modes"),
            ("tensions", "3H tensions (policy)"), ("disclosure", "Disclosure (Casper et al. §5)"),
            ("models", "Models"), ("feedback", "Feedback"), ("reward_model", "Reward model"),
            ("groups", "Annotator groups"))
LEGEND = ("B − A: better (green), worse (red), changed without a direction (amber), same "
          "(plain) at 3 decimals")


def render_markdown(cmp: dict) -> str:
    from .render import md_table, md_text

    mark = {"better": "▲ better", "worse": "▼ worse", "changed": "≠", "same": ""}
    a, b = cmp["a"]["id"], cmp["b"]["id"]
    lines = [f"# rlxf compare: A = {a}, B = {b}", "", f"A: {a} (config sha256 "
             f"{(cmp['a']['config_sha256'] or NULL)[:12]}) · B: {b} (config sha256 "
             f"{(cmp['b']['config_sha256'] or NULL)[:12]})", "", LEGEND + ".", ""]
    tables = _tables(cmp)
    for key, title in SECTIONS:
        lines += [f"## {title}", ""]
        if key == "summary":
            c = _verdict_counts(cmp)
            lines += [f"Model metrics: {c['better']} better, {c['worse']} worse, {c['changed']} "
                      f"changed, {c['same']} the same.", ""]
        if key == "failure-modes":
            for m in cmp["failure_modes"]:
                lines += [f"### {m['title']} — {mark[m['verdict']] or 'same'}", "",
                          f"- A ({num(m['a'])}): {md_text(m['a_reading'])}",
                          f"- B ({num(m['b'])}): {md_text(m['b_reading'])}", ""]
        if key == "tensions":
            for side in ("a", "b"):
                lines += [f"- {side.upper()}: {md_text(r)}" for r in cmp["tradeoffs"][side]]
            lines.append("")
        for header, rows in tables.get(key, []):
            lines += md_table(header + [""], [r["cells"] + [mark[r["verdict"]]] for r in rows])
    return "\n".join(lines).rstrip("\n") + "\n"


CSS = """
tr.better td{background:#eaf6ed}tr.worse td{background:#fdecea}tr.changed td{background:#fff6e0}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:.8rem}
.cols>div>h3{font-size:.95rem;margin:.2rem 0;color:#444}
.verdict-better{color:#146327;font-weight:650}.verdict-worse{color:#a3211a;font-weight:650}
.verdict-changed{color:#8a5a00;font-weight:650}
.cmp .fm{display:block}
@media (max-width:720px){.cols{grid-template-columns:minmax(0,1fr)}}
"""


def _cmp_table(header: list[str], rows: list[dict]) -> str:
    from .render import e, td

    if not rows:
        return f'<p class="null">{NULL} nothing to show</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(f'<tr class="{r["verdict"]}">' + "".join(td(str(c)) for c in r["cells"])
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def render_html(cmp: dict, a: dict, b: dict) -> str:
    """The comparison page; `a` and `b` are the two reports (their plots and tiles)."""
    from . import render as r

    e = r.e
    tables = _tables(cmp)
    modes_a = {m["id"]: m for m in a.get("failure_modes", [])}
    modes_b = {m["id"]: m for m in b.get("failure_modes", [])}
    body: list[str] = []
    for key, title in SECTIONS:
        out = [f'<section id="{key}"><h2>{e(title)}</h2>']
        if key == "summary":
            c = _verdict_counts(cmp)
            out.append(f"<p>Model metrics, B against A: <span class=\"verdict-better\">"
                       f"{c['better']} better</span>, <span class=\"verdict-worse\">{c['worse']} "
                       f"worse</span>, <span class=\"verdict-changed\">{c['changed']} changed"
                       f"</span>, {c['same']} the same.</p>")
            out.append('<div class="cols">' + "".join(
                f"<div><h3>{side}: {e(rep['run']['id'])}</h3>{r.tiles_html(r.glance(rep))}</div>"
                for side, rep in (("A", a), ("B", b))) + "</div>")
        if key == "failure-modes":
            for i, m in enumerate(cmp["failure_modes"], 1):
                verdict = m["verdict"]
                words = {"same": "the same", "changed": "changed"}.get(verdict, verdict)
                diff = "" if m["difference"] is None else f" ({signed(m['difference'], 3)})"
                out.append(f'<h3>{i}. {e(m["title"])}: B is <span class="verdict-{verdict}">'
                           f"{e(words)}</span>{e(diff)}</h3>")
                out.append('<div class="cols cmp">' + "".join(
                    r.failure_mode_html(i, modes[m["id"]], f"{side}-") if m["id"] in modes
                    else f'<p class="null">{NULL} not in this run</p>'
                    for side, modes in (("a", modes_a), ("b", modes_b))) + "</div>")
        if key == "tensions":
            out.append('<div class="cols">' + "".join(
                f"<div><h3>{side}: {e(rep['run']['id'])}</h3><ul class=\"readings\">"
                + "".join(f"<li>{e(t)}</li>" for t in rep["tensions"].get("readings", []))
                + f"</ul>{r.tension_matrix_html(rep)}</div>"
                for side, rep in (("A", a), ("B", b))) + "</div>")
        if key == "disclosure":
            out.append('<div class="cols">' + "".join(
                f"<div><h3>{side}: {e(rep['run']['id'])}</h3>{r.disclosure_html(rep)}</div>"
                for side, rep in (("A", a), ("B", b))) + "</div>")
        out += [_cmp_table(h, rows) for h, rows in tables.get(key, [])]
        body += out + ["</section>"]
    header = [f'<p class="meta">A: {e(r.run_line(a))}</p>',
              f'<p class="meta">B: {e(r.run_line(b))}</p>', f'<p class="meta">{e(LEGEND)}.</p>']
    html = r.page(f"rlxf compare: A = {cmp['a']['id']}, B = {cmp['b']['id']}", header, body,
                  SECTIONS)
    return html.replace("</style>", CSS + "</style>", 1)


def write_comparison(run_a: Path, run_b: Path, out: Path | None = None) -> dict[str, Path]:
    """Write compare-<A>.{json,md,html} into `out` (default RUN_B/report/), atomically."""
    a, b = build_report(Path(run_a)), build_report(Path(run_b))
    cmp = build_comparison(a, b)
    out = Path(out) if out is not None else Path(run_b) / "report"
    stem = f"compare-{a['run']['id']}"
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "html": out / f"{stem}.html"}
    atomic_write_json(paths["json"], cmp)
    atomic_write_text(paths["md"], render_markdown(cmp))
    atomic_write_text(paths["html"], render_html(cmp, a, b))
    return paths

