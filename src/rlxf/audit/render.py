"""Markdown and HTML renderings of the report dict (see report.py). Both are pure functions of
the dict, so they are as deterministic as the JSON: the one plot is an inline SVG written with a
fixed hash salt and no date. The HTML is one self-contained file (inline CSS, no scripts, no
CDN) that reads on a phone."""

from __future__ import annotations

import html
import io
import math

from .report import CONTRACT_METRICS

NULL = "—"
SECTIONS = (("models", "Models"), ("feedback", "Feedback"), ("reward-model", "Reward model"),
            ("overoptimisation", "Over-optimisation"), ("groups", "Annotator groups"),
            ("tensions", "3H tensions per family"), ("samples", "Samples"),
            ("stages", "Stages"), ("disclosure", "Disclosure (Casper et al. §5)"))
MODEL_NAMES = ("base", "sft", "policy")


def _num(v) -> str:
    if v is None:
        return NULL
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.3f}"


def _counts(counts: dict | None) -> str:
    return NULL if not counts else ", ".join(f"{k} {_num(v)}" for k, v in sorted(counts.items()))


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


def _run_line(report: dict) -> str:
    run = report["run"]
    v = run.get("versions") or {}
    sha = run.get("config_sha256")
    return (f"run {run['id']} · created {run.get('created') or NULL} · seed "
            f"{_num(run.get('seed'))} · {_num(run.get('wall_s'))} s · config sha256 "
            f"{sha[:12] + '…' if sha else NULL} · "
            + (", ".join(f"{k} {v[k]}" for k in sorted(v)) if v else "versions " + NULL))


def _disclosure_line(report: dict) -> str:
    s = report.get("disclosure_summary", {})
    return ", ".join(f"{n} {status}" for status, n in s.items())


def _sqrt_kl(kl) -> float | None:
    # A Monte-Carlo KL estimate can dip below zero; the curve's x axis clips it at 0.
    return None if kl is None else math.sqrt(max(kl, 0.0))


def _plot_points(report: dict) -> list[dict]:
    return [p for p in report["overoptimisation"]["points"]
            if None not in (p.get("kl"), p.get("reward_proxy"), p.get("reward_gold"))]


def _section_tables(report: dict) -> dict[str, list[tuple[list[str], list[list[str]]]]]:
    """Every table of the report as (header, rows) of plain strings, shared by both formats."""
    names = _model_names(report)
    models = report["models"]
    fb, rm, oo = report["feedback"], report["reward_model"], report["overoptimisation"]
    t: dict[str, list] = {}
    t["models"] = [(["metric", *names],
                    [[m, *(_num(models[n]["metrics"].get(m)) for n in names)]
                     for m in _metric_names(report)])]
    fb_keys = ("n_judgements", "n_annotators", "n_comparisons", "overlap", "agreement/raw",
               "agreement/krippendorff_alpha", "dropped_identical_pairs", "majority_ties",
               "aggregation/majority_accuracy_gold", "aggregation/dawid_skene_accuracy_gold",
               "triggered_comparisons", "poisoners", "flagged", "poisoning/precision",
               "poisoning/recall", "poisoning/false_positive_rate")
    by_id = {a["id"]: a for a in fb.get("annotators", [])}
    t["feedback"] = [(["quantity", "value"], [[k, _num(fb.get(k))] for k in fb_keys if k in fb]),
                     (["group", "judgements", "annotators", "raw agreement"],
                      [[g, _num(v.get("n_judgements")), _num(v.get("n_annotators")),
                        _num(v.get("agreement/raw"))] for g, v in sorted(fb["groups"].items())]),
                     (["flagged annotator", "word", "agreement there", "others there", "p-value",
                       "truly a poisoner"],
                      [[f["annotator"], f["word"], _num(f["agreement"]),
                        _num(f["others_agreement"]), f"{f['p_value']:.1e}",
                        "yes" if by_id.get(f["annotator"], {}).get("poisoner") else "no"]
                       for f in fb.get("flags", [])])]
    t["reward-model"] = [(["quantity", "value"],
                          [[k, _num(v)] for k, v in sorted(rm.items()) if k != "notes"])]
    t["overoptimisation"] = [(["step", "KL", "√KL", "proxy reward", "gold utility"],
                              [[_num(p["step"]), _num(p["kl"]), _num(_sqrt_kl(p["kl"])),
                                _num(p["reward_proxy"]), _num(p["reward_gold"])]
                               for p in oo["points"]])]
    t["groups"] = [(["group", "annotators", "weights (help/harmless/honest)", "gold utility SFT",
                     "gold utility policy"],
                    [[g, _num(v.get("n_annotators")),
                      "/".join(_num(v.get("weights", {}).get(a)) for a in
                               ("helpful", "harmless", "honest")),
                      _num(v.get("gold/utility_sft")), _num(v.get("gold/utility_policy"))]
                     for g, v in sorted(report["groups"].items())])]
    rows = []
    for fam, by_model in report["tensions"]["per_family"].items():
        for n in MODEL_NAMES:
            if n in by_model:
                s = by_model[n]
                rows.append([fam, n, *(_num(s.get(k)) for k in
                                       ("helpful", "harmless", "honest", "utility"))])
    t["tensions"] = [(["family", "model", "helpful", "harmless", "honest", "utility"], rows)]
    t["stages"] = [(["stage", "status", "wall s", "counts"],
                    [[s["stage"], s["status"], _num(s["wall_s"]), _counts(s["counts"])]
                     for s in report["stages"]])]
    t["disclosure"] = [(["section", "item", "status", "value"],
                        [[d["section"], d["item"], d["status"],
                          d["value"] if d["value"] is not None else f"{NULL} ({d.get('reason')})"]
                         for d in report["disclosure"]])]
    return t


def _section_notes(report: dict) -> dict[str, list[str]]:
    """The reasons beside null numbers, per section."""
    top = report.get("notes", {})
    n = {"models": _metric_notes(report),
         "feedback": [f"{k}: {v}" for k, v in sorted(report["feedback"].get("notes", {}).items())],
         "reward-model": [f"{k}: {v}" for k, v in
                          sorted(report["reward_model"].get("notes", {}).items())],
         "overoptimisation": [f"{k}: {v}" for k, v in
                              sorted(report["overoptimisation"].get("notes", {}).items())],
         "groups": [f"{g}, {k}: {v}" for g, gv in sorted(report["groups"].items())
                    for k, v in sorted(gv.get("notes", {}).items())],
         "tensions": [*report["tensions"].get("notes", {}).values()],
         "samples": [], "stages": [], "disclosure": []}
    for key, section in (("groups", "groups"), ("tensions", "tensions"), ("samples", "samples")):
        if key in top:
            n[section].insert(0, top[key])
    for k, v in sorted(report["run"].get("notes", {}).items()):
        n["stages"].append(f"run {k}: {v}")
    return n


def _sample_blocks(report: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for i, s in enumerate(report["samples"], 1):
        head = (f"{i}. [{s.get('family')}] {s['prompt']} — proxy difference "
                f"{s['proxy_difference']:+.3f}")
        out.append((head, [(f"{m} (proxy {_num(s[m]['reward_proxy'])}, gold utility "
                            f"{_num(s[m]['gold_utility'])})", s[m]["response"])
                           for m in ("sft", "policy")]))
    return out


# --- Markdown ---------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    # Outside tables only a line break could change the structure.
    return str(text).replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"_{NULL} nothing to show_", ""]
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
    return lines + [""]


def render_markdown(report: dict) -> str:
    tables, notes = _section_tables(report), _section_notes(report)
    lines = [f"# rlxf audit report: {report['run']['id']}", "", _run_line(report), "",
             f"Disclosure: {_disclosure_line(report)}.", ""]
    for key, title in SECTIONS:
        lines += [f"## {title}", ""]
        if key == "tensions":
            trade = report["tensions"]["tradeoffs"]
            lines += ["Trade-offs (policy vs SFT): " + ("; ".join(trade) if trade else "none"), ""]
        if key == "samples":
            blocks = _sample_blocks(report)
            for head, sides in blocks:
                lines += [f"**{_md_text(head)}**", ""]
                lines += [f"- {_md_text(label)}: {_md_text(text)}" for label, text in sides]
                lines.append("")
            if not blocks:
                lines += [f"_{NULL} no samples_", ""]
        for header, rows in tables.get(key, []):
            lines += _md_table(header, rows)
        if notes[key]:
            lines += ["Notes:", ""] + [f"- {_md_text(n)}" for n in notes[key]] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- HTML -------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
 margin:0 auto;padding:1rem;max-width:62rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:2rem;
 border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#555;font-size:.9rem;overflow-wrap:anywhere}
nav a{margin-right:.8rem;white-space:nowrap}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.6rem 0}
table{border-collapse:collapse;font-size:.88rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.null{color:#999}.notes{color:#555;font-size:.85rem}
.disclosed{color:#176b2c;font-weight:600}.not-disclosed{color:#b3261e;font-weight:600}
.not-applicable{color:#666}
.sample{border-left:3px solid #ccc;padding:.2rem .7rem;margin:.8rem 0}
.sample p{margin:.2rem 0}code{font-size:.85rem;overflow-wrap:anywhere}
figure{margin:.6rem 0}figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.85rem}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _is_numeric(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _td(cell: str) -> str:
    if cell == NULL:
        return f'<td class="null">{NULL}</td>'
    if cell in ("disclosed", "not disclosed", "not applicable"):
        return f'<td class="{cell.replace(" ", "-")}">{_e(cell)}</td>'
    cls = ' class="num"' if _is_numeric(cell) else ""
    return f"<td{cls}>{_e(cell)}</td>"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return f'<p class="null">{NULL} nothing to show</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def overoptimisation_figure(points: list[dict]):
    """Gold utility and proxy reward against sqrt(KL to SFT) over the policy's steps (Gao et
    al. plot reward against this distance). A matplotlib Figure; no pyplot, so no global figure
    state and no GUI backend."""
    from matplotlib.figure import Figure

    x = [_sqrt_kl(p["kl"]) for p in points]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    ax.plot(x, [p["reward_gold"] for p in points], "o-", color="#1f6fb2", label="gold utility")
    for xi, p in zip(x, points):
        ax.annotate(f"{p['step']}", (xi, p["reward_gold"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7, color="#555")
    ax.set_xlabel("√KL(policy ‖ SFT)   (point labels: policy step)")
    ax.set_ylabel("gold utility", color="#1f6fb2")
    proxy = ax.twinx()  # proxy and gold rewards live on different scales
    proxy.plot(x, [p["reward_proxy"] for p in points], "s--", color="#d0631b",
               label="proxy reward")
    proxy.set_ylabel("proxy reward (reward model)", color="#d0631b")
    handles = ax.get_lines()[:1] + proxy.get_lines()[:1]
    # Above the axes: inside, a legend would hide points wherever the curves happen to go.
    ax.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=2,
              bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    for a in (ax, proxy):
        a.margins(x=0.05, y=0.12)  # room for the step labels
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def overoptimisation_svg(report: dict) -> str | None:
    """The over-optimisation plot as an inline <svg> element (None without points). The hash
    salt fixes the element ids and the date is left out, so the bytes are deterministic."""
    points = _plot_points(report)
    if not points:
        return None
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "rlxf", "svg.fonttype": "none",
                                "font.size": 9}):
        buf = io.StringIO()
        overoptimisation_figure(points).savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):].strip()  # drop the XML prolog and DOCTYPE to inline it


def _html_section(report: dict, key: str, title: str, tables: dict, notes: dict) -> list[str]:
    out = [f'<section id="{key}"><h2>{_e(title)}</h2>']
    if key == "overoptimisation":
        svg = overoptimisation_svg(report)
        if svg:
            out.append(f"<figure>{svg}<figcaption>Gold utility (left axis) and proxy reward "
                       "(right axis) against √KL to SFT over policy steps. Gold that falls "
                       "while proxy rises is over-optimisation.</figcaption></figure>")
        else:
            out.append(f'<p class="null">{NULL} no over-optimisation points</p>')
    if key == "tensions":
        trade = report["tensions"]["tradeoffs"]
        out.append("<p>Trade-offs (policy vs SFT): "
                   + ("; ".join(_e(t) for t in trade) if trade else "none") + "</p>")
    if key == "samples":
        for head, sides in _sample_blocks(report):
            out.append(f'<div class="sample"><p><strong>{_e(head)}</strong></p>'
                       + "".join(f"<p>{_e(label)}:<br><code>{_e(text)}</code></p>"
                                 for label, text in sides) + "</div>")
        if not report["samples"]:
            out.append(f'<p class="null">{NULL} no samples</p>')
    out += [_html_table(h, r) for h, r in tables.get(key, [])]
    if notes[key]:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes[key])
                   + "</ul>")
    return out + ["</section>"]


def render_html(report: dict) -> str:
    tables, notes = _section_tables(report), _section_notes(report)
    title = f"rlxf audit report: {report['run']['id']}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
             f"<header><h1>{_e(title)}</h1>", f'<p class="meta">{_e(_run_line(report))}</p>',
             f'<p class="meta">Disclosure: {_e(_disclosure_line(report))}.</p>',
             "<nav>" + "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in SECTIONS)
             + "</nav></header><main>"]
    for key, section_title in SECTIONS:
        parts += _html_section(report, key, section_title, tables, notes)
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
