"""An example's findings: numbers read from its report.json by path, each with its interval and
n, and the block of the example's header that quotes them. `make examples`
(examples/make_examples.py) runs each example over several seeds and regenerates both the
results file (examples/results/NAME.json) and the header block; tests/test_examples.py checks
that every header quotes its results file, digit for digit."""

from __future__ import annotations

from .fmt import NULL, signed
from .intervals import reading

BEGIN = "# Measured by `make examples`"
END = "# (end of measured)"


def lookup(report: dict, path: list[str]):
    """The node at `path`; inside a list, a key picks the item whose `id` it is
    (["failure_modes", "sycophancy", "change"])."""
    node = report
    for i, key in enumerate(path):
        where = "/".join(path[:i]) or "the top"
        if isinstance(node, list):
            match = [x for x in node if isinstance(x, dict) and x.get("id") == key]
            if not match:
                raise KeyError(f"report.json: no item with id {key!r} in {where}")
            node = match[0]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise KeyError(f"report.json: no key {key!r} in {where}")
    return node


def finding(report: dict, spec: dict) -> dict:
    """One finding: an interval node ({value, ci95, n, within_noise}) or a bare number."""
    node = lookup(report, spec["path"])
    base = {"label": spec["label"], "path": spec["path"], "percent": spec.get("percent", False)}
    if isinstance(node, dict) and "number" in node and "value" not in node:
        node = {**node, "value": node["number"]}  # a failure mode: its number and interval
    if "ci95" in spec:  # a bare number whose interval is stored beside it
        try:
            ci95 = lookup(report, spec["ci95"])
        except KeyError:  # e.g. null where one side of a gap was not measured
            ci95 = None
        node = {"value": node, "ci95": ci95, "n": None}
    if isinstance(node, dict):
        if "value" not in node:
            raise KeyError(f"report.json: {'/'.join(spec['path'])} is not a number or an "
                           f"interval (keys: {', '.join(sorted(node))})")
        out = {**base, "value": node["value"], "ci95": node.get("ci95"), "n": node.get("n")}
        if "within_noise" in node:
            out["within_noise"] = node["within_noise"]
        elif spec.get("change"):  # a difference stored without its reading
            ci = out["ci95"]
            out["within_noise"] = None if ci is None else bool(ci[0] <= 0 <= ci[1])
        return out
    if node is not None and not isinstance(node, (int, float)):
        raise KeyError(f"report.json: {'/'.join(spec['path'])} is not a number")
    return {**base, "value": node, "ci95": None, "n": None}


def n_text(n) -> str:
    """' (n: 3 seeds × 40 prompts)' for an interval's n; '' without one."""
    if not isinstance(n, dict):
        return ""
    parts = [f"{n[k]} {k if n[k] != 1 else k[:-1]}"
             for k in ("seeds", "prompts", "eval_points", "clusters")
             if isinstance(n.get(k), int) and not (k == "clusters" and "prompts" in n)]
    return f" (n: {' × '.join(parts)})" if parts else ""


def line(f: dict) -> str:
    """'label: +0.39 [+0.31, +0.47], beyond noise (n: 3 seeds × 110 prompts)'."""
    if f["percent"]:
        def fmt(v):
            return f"{100 * v:+.1f} pts" if "within_noise" in f else f"{100 * v:.1f}%"
    else:
        def fmt(v):
            return signed(v, 3) if "within_noise" in f else f"{v:.3f}"
    text = NULL if f["value"] is None else reading(f, fmt)
    return f"{f['label']}: {text}{n_text(f['n'])}"


# The block of an example not measured yet: says so instead of quoting numbers.
NOT_YET = [f"{BEGIN}: not run yet (its numbers over 3 seeds, with intervals, go here).", END]


def block(results: dict) -> list[str]:
    """The header lines that quote `results` (what examples/make_examples.py writes)."""
    head = (f"{BEGIN} ({len(results['seeds'])} seeds, {results['date']}, rlxf "
            f"{results['commit']}; examples/results/{results['example']}.json):")
    return [head, *(f"#   {line(f)}" for f in results["findings"]), END]


def rewrite(text: str, lines: list[str]) -> str:
    """`text` (an example's TOML) with its measured block replaced by `lines`, or inserted at
    the end of the leading comment block when it has none."""
    rows = text.splitlines()
    start = next((i for i, r in enumerate(rows) if r.startswith(BEGIN)), None)
    if start is not None:
        end = next((i for i in range(start, len(rows)) if rows[i] == END), None)
        if end is None:
            raise ValueError(f"a line starting {BEGIN!r} without a closing {END!r}")
        rows[start:end + 1] = lines
    else:
        at = next((i for i, r in enumerate(rows) if not r.startswith("#")), len(rows))
        rows[at:at] = lines
    return "\n".join(rows) + "\n"


def quoted(text: str) -> list[str] | None:
    """The measured block of an example's TOML as written, or None without one."""
    rows = text.splitlines()
    start = next((i for i, r in enumerate(rows) if r.startswith(BEGIN)), None)
    if start is None:
        return None
    end = next(i for i in range(start, len(rows)) if rows[i] == END)
    return rows[start:end + 1]
