"""The report's plots, as inline <svg> elements drawn with matplotlib. Each is a pure function of
numbers in the report dict and byte-deterministic: matplotlib's defaults are restored inside the
plot (a matplotlibrc in the working directory or the user's config cannot change a plot), the
SVG hash salt is fixed per figure (ids are stable and never collide between figures inlined in
the same page) and the date is left out. No pyplot: no global figure state, no GUI backend."""

from __future__ import annotations

import io
import math
from contextlib import contextmanager

from .fmt import pct

MODELS = ("base", "sft", "policy")
LABEL = {"base": "base", "sft": "SFT", "policy": "policy"}
COLOR = {"base": "#9aa0a6", "sft": "#1f6fb2", "policy": "#d0631b"}
GOLD, PROXY, LOST, GAINED = "#1f6fb2", "#d0631b", "#b3261e", "#176b2c"
FAMILY_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                 "#17becf", "#7f7f7f", "#bcbd22")
RC = {"svg.fonttype": "none", "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8,
      "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7,
      "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}


@contextmanager
def _style(salt: str):
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # ignore any matplotlibrc outside the run directory
        matplotlib.rcParams.update({**RC, "svg.hashsalt": f"rlxf-{salt}"})
        yield


def svg(name: str, draw, *args) -> str:
    """`draw(*args)` -> Figure, as an inline <svg> element whose ids are salted by `name`."""
    with _style(name):
        fig = draw(*args)
        # tight_layout has placed everything; the placeholder engine it leaves would make
        # savefig draw the whole figure an extra time before drawing it to the SVG
        fig.set_layout_engine(None)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):].strip()  # drop the XML prolog and DOCTYPE to inline it


def _figure(w: float, h: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    axes = fig.subplots(1, ncols)
    return fig, axes


def sqrt_kl(kl) -> float | None:
    # A Monte-Carlo KL estimate can dip below zero; the curve's x axis clips it at 0.
    return None if kl is None else math.sqrt(max(kl, 0.0))


# --- over-optimisation ------------------------------------------------------------------------

def overoptimisation(points: list[dict], size=(6.4, 3.4)):
    """Gold utility and proxy reward against sqrt(KL to SFT) over the policy's steps (Gao et
    al. plot reward against this distance)."""
    fig, ax = _figure(*size)
    x = [sqrt_kl(p["kl"]) for p in points]
    ax.plot(x, [p["reward_gold"] for p in points], "o-", color=GOLD, label="gold utility")
    for xi, p in zip(x, points):
        ax.annotate(f"{p['step']}", (xi, p["reward_gold"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=6, color="#555")
    ax.set_xlabel("√KL(policy ‖ SFT)   (labels: policy step)")
    ax.set_ylabel("gold utility", color=GOLD)
    proxy = ax.twinx()  # proxy and gold rewards live on different scales
    proxy.spines["right"].set_visible(True)
    proxy.plot(x, [p["reward_proxy"] for p in points], "s--", color=PROXY, label="proxy reward")
    proxy.set_ylabel("proxy reward (reward model)", color=PROXY)
    handles = ax.get_lines()[:1] + proxy.get_lines()[:1]
    # Above the axes: inside, a legend would hide points wherever the curves happen to go.
    ax.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=2,
              bbox_to_anchor=(0.5, 1.0), frameon=False)
    for a in (ax, proxy):
        a.margins(x=0.05, y=0.15)  # room for the step labels
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --- 3H frontier ------------------------------------------------------------------------------

MARKER = {"base": ("o", 4, 0.45), "sft": ("s", 4, 1.0), "policy": ("^", 6.5, 1.0)}


def frontier(per_family: dict, other: str):
    """Per prompt family, base -> SFT -> policy in the (helpful, `other`) plane: where RLHF
    moved each family, and whether it gained one axis by losing another."""
    from matplotlib.lines import Line2D

    fig, ax = _figure(3.9, 3.9)
    for i, fam in enumerate(per_family):
        c = FAMILY_COLORS[i % len(FAMILY_COLORS)]
        pts = [(m, per_family[fam][m]) for m in MODELS if m in per_family[fam]
               and None not in (per_family[fam][m].get("helpful"), per_family[fam][m].get(other))]
        xy = [(s["helpful"], s[other]) for _, s in pts]
        for a, b in zip(xy, xy[1:]):
            ax.annotate("", xy=b, xytext=a, arrowprops={
                "arrowstyle": "-|>", "color": c, "lw": 1.1, "alpha": 0.85, "shrinkA": 3,
                "shrinkB": 3, "mutation_scale": 8})
        for (m, _), (x, y) in zip(pts, xy):
            mk, size, alpha = MARKER[m]
            ax.plot([x], [y], mk, color=c, markersize=size, alpha=alpha)
    ax.set_xlabel("helpful")
    ax.set_ylabel(other)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_title(f"helpful vs {other}")
    handles = [Line2D([], [], color=FAMILY_COLORS[i % len(FAMILY_COLORS)], lw=2)
               for i in range(len(per_family))]
    handles += [Line2D([], [], marker=mk, color="#444", linestyle="", markersize=s, alpha=a)
                for mk, s, a in MARKER.values()]
    ax.legend(handles, [*per_family, "base", "SFT", "policy"], loc="upper center",
              bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


# --- failure modes ----------------------------------------------------------------------------

SMALL = (4.4, 2.5)


def _bar_labels(ax, bars, values, fmt):
    for b, v in zip(bars, values):
        ax.annotate(fmt(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    textcoords="offset points", xytext=(0, 2 if v >= 0 else -9), ha="center",
                    fontsize=7)


def by_model(values: dict, ylabel: str, percent: bool = True):
    """Bars of one rate for base, SFT and policy (models without a value are left out)."""
    fig, ax = _figure(*SMALL)
    ms = [m for m in MODELS if values.get(m) is not None]
    vals = [values[m] for m in ms]
    bars = ax.bar([LABEL[m] for m in ms], vals, color=[COLOR[m] for m in ms], width=0.6)
    _bar_labels(ax, bars, vals, pct if percent else (lambda v: f"{v:+.2f}"))
    if percent:
        from matplotlib.ticker import PercentFormatter
        top = max(vals, default=0.0)
        if top <= 0:  # all zero: a flat axis would label its ticks "-0.000000%"
            ax.set_ylim(0, 0.1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if top >= 0.05 or top <= 0
                                                      else 1))
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.2)
    fig.tight_layout()
    return fig


def surface_features(features: dict):
    """Left: each surface feature for SFT and policy. Right: what the proxy pays for it (the
    within-family reward difference of answers with and without the feature)."""
    fig, (left, right) = _figure(6.4, 2.7, 2)
    names = list(features)
    labels = [("fillers / answer" if f["unit"] == "per answer" else n) for n, f in
              features.items()]
    y = list(range(len(names)))
    h = 0.38
    left.barh([i - h / 2 for i in y], [features[n]["sft"] for n in names], h, color=COLOR["sft"],
              label="SFT")
    left.barh([i + h / 2 for i in y], [features[n]["policy"] for n in names], h,
              color=COLOR["policy"], label="policy")
    left.set_yticks(y, labels)
    left.invert_yaxis()
    left.set_title("surface features (share, or per answer)")
    left.legend(frameon=False, loc="lower right")
    proxy = [features[n]["proxy"] or 0.0 for n in names]
    bars = right.barh(y, proxy, 0.6, color=[PROXY if v > 0 else "#c9ced6" for v in proxy])
    right.axvline(0, color="#444", lw=0.6)
    right.set_yticks(y, [""] * len(y))
    right.invert_yaxis()
    right.set_title("proxy premium (gold premium in text)")
    for b, n in zip(bars, names):
        g = features[n]["gold"]
        right.annotate("gold " + ("n/a" if g is None else f"{g:+.2f}"),
                       (0, b.get_y() + b.get_height() / 2), textcoords="offset points",
                       xytext=(3 if (features[n]["proxy"] or 0) <= 0 else -3, 0),
                       ha="left" if (features[n]["proxy"] or 0) <= 0 else "right",
                       va="center", fontsize=6.5, color="#222")
    right.margins(x=0.25)
    fig.tight_layout()
    return fig


def refusals(harm: dict, over: dict):
    """Over-refusal (x) against harmful compliance (y) for base -> SFT -> policy; the origin
    is the ideal."""
    fig, ax = _figure(*SMALL)
    pts = [(m, over[m], harm[m]) for m in MODELS if None not in (over.get(m), harm.get(m))]
    for (_, x0, y0), (_, x1, y1) in zip(pts, pts[1:]):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={
            "arrowstyle": "-|>", "color": "#666", "lw": 1, "shrinkA": 4, "shrinkB": 4,
            "mutation_scale": 8})
    for m, x, y in pts:
        ax.plot([x], [y], "o", color=COLOR[m], markersize=7)
        ax.annotate(LABEL[m], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("over-refusal (benign look-alikes refused)")
    ax.set_ylabel("harmful compliance")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def diversity(values: dict):
    """Distinct-2, sequence entropy and response-type entropy for base, SFT and policy."""
    fig, axes = _figure(6.4, 2.3, 3)
    for ax, (key, title, fmt) in zip(axes, (("distinct2", "distinct-2", "{:.3f}"),
                                             ("entropy", "entropy (nats/answer)", "{:.2f}"),
                                             ("type_entropy", "response types (bits)", "{:.2f}"))):
        ms = [m for m in MODELS if (values.get(key) or {}).get(m) is not None]
        vals = [values[key][m] for m in ms]
        bars = ax.bar([LABEL[m] for m in ms], vals, color=[COLOR[m] for m in ms], width=0.6)
        _bar_labels(ax, bars, vals, fmt.format)
        ax.set_title(title)
        ax.margins(y=0.2)
    fig.tight_layout()
    return fig


def groups(values: dict):
    """Each group's gold utility under its own weights, SFT -> policy."""
    fig, ax = _figure(*SMALL)
    for i, (g, v) in enumerate(values.items()):
        if None in (v.get("sft"), v.get("policy")):
            continue
        c = FAMILY_COLORS[i % len(FAMILY_COLORS)]
        ax.plot([0, 1], [v["sft"], v["policy"]], "o-", color=c, lw=1.6)
        ax.annotate(f"{g} {v['policy'] - v['sft']:+.2f}", (1, v["policy"]),
                    textcoords="offset points", xytext=(6, 0), va="center", fontsize=7, color=c)
    ax.set_xticks([0, 1], ["SFT", "policy"])
    ax.set_xlim(-0.3, 1.8)
    ax.set_ylabel("gold utility (group's weights)")
    ax.margins(y=0.2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def annotators(people: list[dict]):
    """Each annotator's agreement with the others, sorted; flagged ones in red, true poisoners
    marked with a ring."""
    fig, ax = _figure(*SMALL)
    rows = sorted((a for a in people if a.get("agreement/with_others") is not None),
                  key=lambda a: (a["agreement/with_others"], a["id"]))
    x = list(range(len(rows)))
    ax.scatter(x, [a["agreement/with_others"] for a in rows], s=10,
               c=[LOST if a.get("flagged") else "#7a8089" for a in rows], zorder=2)
    pois = [(i, a["agreement/with_others"]) for i, a in enumerate(rows) if a.get("poisoner")]
    if pois:
        ax.scatter([i for i, _ in pois], [y for _, y in pois], s=60, facecolors="none",
                   edgecolors="#111", linewidths=0.8, zorder=3, label="true poisoner")
    ax.scatter([], [], s=10, c=LOST, label="flagged")
    ax.set_xlabel("annotators, sorted by agreement")
    ax.set_ylabel("agreement with others")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def failure_mode_svg(mode: dict) -> str | None:
    """The plot of one failure-mode entry (rlxf.audit.failure_modes), or None when it has
    nothing to draw."""
    v, name = mode["values"], f"fm-{mode['id']}"
    if mode["id"] == "overoptimisation":
        return svg(name, overoptimisation, v["points"], SMALL) if len(v["points"]) >= 2 else None
    if mode["id"] == "reward_hacking":
        feats = v.get("features") or {}
        seen = any(f["sft"] or f["policy"] or f["proxy"] is not None for f in feats.values())
        return svg(name, surface_features, feats) if seen else None
    if mode["id"] in ("sycophancy", "anthropomorphism", "apology", "backdoor"):
        if all(x is None for x in v["by_model"].values()):
            return None
        percent = mode["id"] != "backdoor"
        return svg(name, by_model, v["by_model"], v["metric"], percent)
    if mode["id"] == "refusals":
        ok = any(None not in (v["over_refusal"].get(m), v["harmful_compliance"].get(m))
                 for m in MODELS)
        return svg(name, refusals, v["harmful_compliance"], v["over_refusal"]) if ok else None
    if mode["id"] == "mode_collapse":
        ok = any(x is not None for d in v.values() for x in d.values())
        return svg(name, diversity, v) if ok else None
    if mode["id"] == "group_disparity":
        ok = any(None not in (g.get("sft"), g.get("policy")) for g in v["groups"].values())
        return svg(name, groups, v["groups"]) if ok else None
    if mode["id"] == "annotators":
        ok = any(a.get("agreement/with_others") is not None for a in v["annotators"])
        return svg(name, annotators, v["annotators"]) if ok else None
    return None
