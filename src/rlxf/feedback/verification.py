"""What the simulated annotators could check: how accurate their labels were (against the gold
judge) on facts they knew, and on facts they did not know, with or without an AI fact check."""

from __future__ import annotations

from .record import FeedbackRecord


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def verification_accuracy(records: list[FeedbackRecord], gold: list[str | None]) -> dict:
    """oversight/* metrics of simulated records carrying provenance["oversight"]; `gold` is the
    gold verdict ("a", "b", None for a gold tie) of item c{i:06d}."""
    tally = {k: [0, 0] for k in ("known", "unknown", "unknown_assisted", "unknown_unassisted")}
    fact_judgements = unknown = critiques = critiques_right = 0
    for r in records:
        check = r.provenance.get("oversight") or {}
        if "knew" not in check:
            continue  # careless, or no fact at stake
        fact_judgements += 1
        unknown += not check["knew"]
        if "critique_correct" in check:
            critiques += 1
            critiques_right += check["critique_correct"]
        g = gold[int(r.item_id.removeprefix("c"))]
        if g is None or r.choice is None:
            continue
        hit = "ab"[r.choice] == g
        keys = ["known"] if check["knew"] else [
            "unknown", "unknown_assisted" if "critique_correct" in check else "unknown_unassisted"]
        for k in keys:
            tally[k][0] += hit
            tally[k][1] += 1
    return {"oversight/fact_judgements": fact_judgements,
            "oversight/share_unknown": _rate(unknown, fact_judgements),
            "oversight/critiques_shown": critiques,
            "oversight/critique_accuracy": _rate(critiques_right, critiques),
            **{f"oversight/accuracy_gold_{k}": _rate(*v) for k, v in tally.items()},
            **{f"oversight/n_gold_{k}": v[1] for k, v in tally.items()}}
