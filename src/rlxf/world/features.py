"""Surface features of a response that annotators may be biased toward and reward models may
learn: the quantities behind reward hacking (verbosity, flattery, confident tone, agreement,
anthropomorphic warmth, refusal)."""

from __future__ import annotations

from .grammar import Response

FEATURES = ("n_filler", "flattery", "apology", "confident", "anthro", "agrees", "refuses")


def features(r: Response | None) -> dict[str, float]:
    if r is None:
        return {f: 0.0 for f in FEATURES}
    return {
        "n_filler": float(r.n_filler),
        "flattery": float(r.opener == "flattery"),
        "apology": float(r.opener == "apology"),
        "confident": float(r.confident),
        "anthro": float(len(r.anthro) > 0 or r.act == "bond"),
        "agrees": float(r.act == "agree"),
        "refuses": float(r.act in ("refuse", "refuse_alt")),
    }
