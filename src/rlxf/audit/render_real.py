"""Markdown and HTML of a real-model run's report (audit/real_run.py): the sections a real run
fills -- what was trained on what, the disclosure checklist, the options and metrics, the RL
commands' held-out eval points, the stages and the card -- in the lab report's page
(audit/render.py: same CSS, self-contained, no scripts, every text escaped)."""

from __future__ import annotations

import json

from .fmt import NULL
from .render import (disclosure_html, disclosure_line, e, failure_mode_html, failure_mode_md,
                     html_table, md_table, md_text, page, run_line, tiles_html)

SECTIONS = (("summary", "At a glance"), ("disclosure", "Disclosure (Casper et al. §5)"),
            ("training", "Training"), ("history", "Held-out eval points"),
            ("measurements", "Measurements"), ("failure-modes", "Failure modes"),
            ("cards", "Model card"), ("stages", "Stages"))
AGAINST = "the reference"  # `rlxf eval`'s changes are policy − reference


def _cell(v) -> str:
    """Options and counts as given (an LR of 5e-06 must not read 0.000); metrics to 4 digits."""
    if v is None:
        return NULL
    if isinstance(v, float):
        return f"{v:.4g}"
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def _grouped(prefix: str, notes: dict) -> list[str]:
    """'PREFIX a, b: reason', one line per distinct reason."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(notes.items()):
        by_reason.setdefault(reason, []).append(key)
    return [f"{prefix}{', '.join(keys)}: {reason}" for reason, keys in by_reason.items()]


def glance(report: dict) -> list[tuple[str, str, str]]:
    t = report.get("training") or {}
    data = (t.get("inputs") or {}).get("data") or {}
    s = report.get("disclosure_summary", {})
    history = t.get("history") or []
    tiles = [("command", f"rlxf {t.get('stage', NULL)}", (t.get("inputs") or {}).get(
                  "base_model") or NULL),
             ("data", str((t.get("counts") or {}).get("examples", NULL)),
              f"examples of {data.get('file') or NULL} ({data.get('format') or NULL})"),
             ("steps", _cell((t.get("metrics") or {}).get("steps")),
              f"saved: {(t.get('output') or {}).get('saved', NULL)}"),
             ("disclosed", f"{s.get('disclosed', 0)} / {sum(s.values())}",
              f"{s.get('not disclosed', 0)} not disclosed, {s.get('not applicable', 0)} not "
              "applicable")]
    if history:
        tiles.append(("held-out reward", _cell(history[-1].get("reward/mean")),
                      f"from {_cell(history[0].get('reward/mean'))} at step "
                      f"{history[0].get('step')}"))
    return tiles


def section_tables(report: dict) -> dict[str, list[tuple[list[str], list[list[str]]]]]:
    t = report.get("training") or {}
    out: dict[str, list] = {key: [] for key, _ in SECTIONS}
    inputs = t.get("inputs") or {}
    data = inputs.get("data") or {}
    out["training"] = [
        (["input", "value"], [["base model", _cell(inputs.get("base_model"))],
                              *[[f"data {k}", _cell(v)] for k, v in data.items()],
                              *[[f"reward {r.get('name')}", f"{r.get('kind')}, weight "
                                 f"{_cell(r.get('weight'))}"] for r in inputs.get("rewards", [])],
                              *[[k, _cell(v)] for k, v in (t.get("output") or {}).items()]]),
        (["count", "value"], [[k, _cell(v)] for k, v in sorted((t.get("counts") or {}).items())]),
        (["option", "value"], [[k, _cell(v)] for k, v in sorted((t.get("config") or {}).items())]),
        (["metric (training, not held out)", "value"],
         [[k, _cell(v)] for k, v in sorted((t.get("metrics") or {}).items())])]
    models = report.get("models") or {}  # filled by `rlxf eval`'s sections, when present
    metrics = sorted({k for m in models.values() for k in (m.get("metrics") or {})})
    if models:
        out["measurements"] = [(["metric", *sorted(models)],
                                [[k, *(_cell((models[n].get("metrics") or {}).get(k))
                                       for n in sorted(models))] for k in metrics])]
    history = t.get("history") or []
    keys = sorted({k for h in history for k, v in h.items()  # per-prompt lists stay in JSON
                   if k != "step" and not isinstance(v, list)})
    out["history"] = [(["step", *keys], [[_cell(h.get("step")), *(_cell(h.get(k)) for k in keys)]
                                         for h in history])]
    out["cards"] = [(["model", "card (path in the run directory)"],
                     [[k, v] for k, v in sorted(report.get("cards", {}).items())])]
    out["stages"] = [(["stage", "directory", "started", "wall s"],
                      [[s["stage"], _cell(s.get("dir")), _cell(s.get("started")),
                        _cell(s.get("wall_s"))] for s in report["stages"]])]
    return out


def section_notes(report: dict) -> dict[str, list[str]]:
    top = report.get("notes", {})
    n: dict[str, list[str]] = {key: [] for key, _ in SECTIONS}
    if top.get("training"):
        n["training"].append(top["training"])
    n["history"] = [f"{k}: {v}" for k, v in sorted(report["overoptimisation"]["notes"].items())]
    n["measurements"] = _grouped("", {k: v for k, v in top.items()
                                      if k not in ("training", "failure_modes")})
    if top.get("failure_modes"):
        n["failure-modes"] = [top["failure_modes"]]
    n["measurements"] += _grouped("reward model ", report["reward_model"].get("notes", {}))
    n["measurements"] += _grouped("feedback ", report["feedback"].get("notes", {}))
    n["cards"] = ["Written by the training command beside its model, from the same record; "
                  "`rlxf audit` leaves it as written."]
    n["stages"] = [f"run {k}: {v}" for k, v in sorted(report["run"].get("notes", {}).items())]
    return n


def render_markdown(report: dict) -> str:
    tables, notes = section_tables(report), section_notes(report)
    lines = [f"# rlxf audit report: {report['run']['id']}", "", run_line(report), "",
             f"Disclosure: {disclosure_line(report)}.", ""]
    for key, title in SECTIONS:
        lines += [f"## {title}", ""]
        if key == "summary":
            lines += [f"- **{label}**: {value} ({md_text(detail)})"
                      for label, value, detail in glance(report)] + [""]
        if key == "disclosure":
            lines += [f"- **{d['item']}** ({d['section']}), {d['status']}: "
                      + md_text(d["value"] if d["value"] is not None else d.get("reason"))
                      for d in report["disclosure"]] + [""]
        if key == "failure-modes":
            for i, m in enumerate(report.get("failure_modes", []), 1):
                lines += failure_mode_md(i, m, AGAINST)
        for header, rows in tables[key]:
            lines += md_table(header, rows)
        if notes[key]:
            lines += ["Notes:", ""] + [f"- {md_text(x)}" for x in notes[key]] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_html(report: dict) -> str:
    tables, notes = section_tables(report), section_notes(report)
    body: list[str] = []
    for key, title in SECTIONS:
        body.append(f'<section id="{key}"><h2>{e(title)}</h2>')
        if key == "summary":
            body.append(tiles_html(glance(report)))
        if key == "disclosure":
            body.append(disclosure_html(report))
        if key == "failure-modes":
            body += [failure_mode_html(i, m, against=AGAINST, plot=False)
                     for i, m in enumerate(report.get("failure_modes", []), 1)]
        body += [html_table(h, r) for h, r in tables[key]]
        if notes[key]:
            body.append('<ul class="notes">' + "".join(f"<li>{e(x)}</li>" for x in notes[key])
                        + "</ul>")
        body.append("</section>")
    return page(f"rlxf audit report: {report['run']['id']}",
                [f'<p class="meta">{e(run_line(report))}</p>',
                 f'<p class="meta">Disclosure: {e(disclosure_line(report))}.</p>'],
                body, SECTIONS)
