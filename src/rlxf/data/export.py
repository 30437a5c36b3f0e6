"""`rlxf data export --format trl`: canonical pairwise records -> TRL preference JSONL.

One row per item: the judgements sharing an item_id are reduced to their majority (ties and
even splits dropped and counted) -- or to a curator's final label (a record with
`adjudication`, from the annotation app's review queue) where there is one -- the same rule
the reward stage trains on (`rlxf.feedback.quality.majority`, `final_labels`). Rows are TRL's
standard format, {prompt, chosen, rejected} strings -- or, when any record has earlier turns
(`context`), TRL's conversational format for every row (prompt a message list ending with the
user turn, chosen/rejected one assistant message each), since a string prompt would lose the
turns.

Rating records (UltraFeedback, HelpSteer2) become one pair per prompt as UltraFeedback-binarized
was built (data/binarize.py: highest overall score chosen, a random lower one rejected, seeded;
ties and single completions dropped and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..feedback.record import FeedbackRecord, RecordError, read_records
from .binarize import BinarizeResult, binarize_ratings
from .io import write_records


@dataclass
class ExportResult:
    records: int = 0           # records read
    not_pairwise: int = 0      # ranking, binary, ... records: not preferences, left out
    tie_judgements: int = 0    # pairwise records with tie=true
    items: int = 0             # items with a pairwise judgement
    several: int = 0           # items judged more than once: their majority is exported
    no_majority: int = 0       # items whose judgements tie or split evenly: dropped
    rows: int = 0              # rows written
    conversational: bool = False
    ratings: BinarizeResult = field(default_factory=BinarizeResult)  # rating records -> pairs


def export_trl(src: Path, dst: Path, seed: int = 0) -> ExportResult:
    records = read_records(src)
    result = ExportResult(records=len(records))
    result.conversational = any(r.context for r in records if r.type in ("pairwise", "rating"))
    rows = [_row(first, chosen, rejected, result.conversational)
            for first, chosen, rejected in preference_pairs(records, src, result, seed)]
    result.rows = write_records(dst, rows)
    return result


def preference_pairs(records: list[FeedbackRecord], src: Path, result: ExportResult,
                     seed: int = 0) -> list[tuple[FeedbackRecord, str, str]]:
    """The majority of each pairwise item, then the binarised rating records."""
    pairs = majority_preferences(records, src, result)
    binarized, result.ratings = binarize_ratings(records, seed)
    return pairs + binarized


def majority_preferences(records: list[FeedbackRecord], src: Path, result: ExportResult
                         ) -> list[tuple[FeedbackRecord, str, str]]:
    """(first record of the item, chosen, rejected) per item with a majority, counting in
    `result` what is left out and why (rating records are binarize_ratings')."""
    from ..feedback.quality import majority  # numpy and krippendorff: only when needed

    items: dict[str, list[FeedbackRecord]] = {}
    finals: dict[str, FeedbackRecord] = {}  # a curator's final label overrides the majority
    for r in records:
        if r.type == "rating":
            continue
        if r.type != "pairwise":
            result.not_pairwise += 1
        elif r.adjudication is not None:
            finals[r.item_id] = r
        else:
            items.setdefault(r.item_id, []).append(r)
    result.items = len(items)
    out = []
    for item_id, group in items.items():
        first = group[0]
        votes = []
        for r in group:
            if r.tie:
                result.tie_judgements += 1
            elif r.responses == first.responses:
                votes.append({"choice": "ab"[r.choice]})
            elif r.responses == first.responses[::-1]:  # same pair shown the other way round
                votes.append({"choice": "ba"[r.choice]})
            else:
                raise RecordError(f"{src}: item {item_id}: record {r.id} judges other responses "
                                  f"than record {first.id} (expected one pair per item_id)")
        result.several += len(group) > 1
        winner = majority(votes)
        if item_id in finals:
            final = finals[item_id]
            same_order = final.responses == first.responses
            winner = None if final.tie else "ab"[final.choice if same_order else 1 - final.choice]
        if winner is None:
            result.no_majority += 1
            continue
        chosen, rejected = first.responses if winner == "a" else first.responses[::-1]
        out.append((first, chosen, rejected))
    return out


def _row(rec: FeedbackRecord, chosen: str, rejected: str, conversational: bool) -> dict:
    if not conversational:
        return {"prompt": rec.prompt, "chosen": chosen, "rejected": rejected}
    prompt = [m.model_dump() for m in rec.context] + [{"role": "user", "content": rec.prompt}]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}
