"""What a set of feedback records is, counted: how many of each type, who judged them (the
records' own `source`), where the judged responses came from (their provenance), which aspects
the ratings name and how many responses each ranking orders. The feedback stage records this in
its ledger record (`metrics.records`), so the disclosure and the cards can say what the feedback
was without guessing from the config."""

from __future__ import annotations

from collections import Counter
from typing import get_args

from .record import FeedbackRecord, FeedbackType, Source

TYPES: tuple[str, ...] = get_args(FeedbackType)
SOURCES: tuple[str, ...] = get_args(Source)
UNKNOWN_ORIGIN = "unknown"


def response_origin(r: FeedbackRecord) -> str:
    """Where a record's responses came from, in words, from its provenance (what
    `rlxf data import` and `rlxf annotate export` write); "unknown" when it does not say."""
    p = r.provenance
    if p.get("dataset"):
        return f"the dataset {p['dataset']}"
    if p.get("app") == "rlxf annotate":
        return f"the items of rlxf annotate project {p.get('project', '?')!r}"
    return UNKNOWN_ORIGIN


def record_facts(records: list[FeedbackRecord], origin: str | None = None) -> dict:
    """{"types": {type: n} (every type, 0 included), "judged_by": {source: n} (every source),
    "responses_from": {origin: n}, "rating_aspects": [names], "pairwise_with_aspect": n,
    "ranking_sizes": {k: n}}. `origin`: where every response came from, when the caller made
    them (the stage's own SFT samples); otherwise each record's provenance says."""
    types = Counter(r.type for r in records)
    judged = Counter(r.source for r in records)
    origins = Counter(origin or response_origin(r) for r in records)
    return {
        "types": {t: types.get(t, 0) for t in TYPES},
        "judged_by": {s: judged.get(s, 0) for s in SOURCES},
        "responses_from": dict(sorted(origins.items())),
        "rating_aspects": sorted({a for r in records if r.type == "rating"
                                  for a in (r.ratings or {})}),
        "pairwise_with_aspect": sum(r.type == "pairwise" and bool(r.provenance.get("aspect"))
                                    for r in records),
        "ranking_sizes": {str(k): n for k, n in sorted(Counter(
            len(r.responses) for r in records if r.type == "ranking").items())},
    }
