"""What a reward model trains on, from canonical feedback records: majority-labelled pairs and
k-wise (partial, tied) rankings as token ids, split into train and held-out by a hash of the
item id and the seed (so a split never depends on record order)."""

from __future__ import annotations

import hashlib
import itertools

from ..feedback.quality import final_labels, items_of, majority
from ..feedback.record import FeedbackRecord
from ..models.tokenizer import prompt_ids, response_ids


def is_heldout(comparison_id: str, seed: int, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}:rm:{comparison_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def preference_pairs(records: list[FeedbackRecord], tok, seed: int, heldout_fraction: float):
    """(train, heldout) lists of (comparison row, (prompt ids, chosen ids, rejected ids)): each
    pairwise item's majority (or curated) label; ties dropped."""
    first = {}
    for r in records:  # the pairwise record of each item (another type may share its id)
        if r.type == "pairwise":
            first.setdefault(r.item_id, r)
    train, heldout = [], []
    finals = final_labels(records)  # a curator's decision overrides the majority
    for item_id, judgements in items_of(records).items():
        winner = finals.get(item_id, majority(judgements))
        winner = None if winner == "tie" else winner
        if winner is None:
            continue
        rec = first[item_id]
        chosen, rejected = rec.responses if winner == "a" else rec.responses[::-1]
        pair = (prompt_ids(tok, rec.prompt), response_ids(tok, chosen),
                response_ids(tok, rejected))
        row = {"id": item_id, "prompt_id": rec.prompt_id, "chosen": chosen, "rejected": rejected,
               "winner": winner, "groups": sorted({j["group"] or "?" for j in judgements})}
        split = heldout if is_heldout(item_id, seed, heldout_fraction) else train
        split.append((row, pair))
    return train, heldout


def preference_rankings(records: list[FeedbackRecord], tok, seed: int, heldout_fraction: float
                        ) -> tuple[list, list]:
    """(training rankings (prompt ids, response ids best first), held-out pairs derived from
    held-out rankings: every (better, worse) pair of each, as rows like `preference_pairs`')."""
    train, heldout = [], []
    for rec in records:
        if rec.type != "ranking" or len(rec.responses) < 2:
            continue
        # partial (top-k) and tied rankings: every response, by level; unranked ones last
        levels = rec.ranking_levels()
        order = sorted(range(len(levels)), key=lambda i: levels[i])
        ranked, ranked_levels = [rec.responses[i] for i in order], sorted(levels)
        if not is_heldout(rec.item_id, seed, heldout_fraction):
            ids = [response_ids(tok, r) for r in ranked]
            strict = ranked_levels == list(range(len(ranked)))
            train.append((prompt_ids(tok, rec.prompt), ids) if strict else
                         (prompt_ids(tok, rec.prompt), ids, ranked_levels))
            continue
        for i, j in itertools.combinations(range(len(ranked)), 2):
            if ranked_levels[i] == ranked_levels[j]:
                continue  # tied or both unranked: no preference to score
            row = {"id": f"{rec.id}/{i}>{j}", "prompt_id": rec.prompt_id, "chosen": ranked[i],
                   "rejected": ranked[j], "winner": "a", "groups": [rec.annotator.group or "?"]}
            heldout.append((row, (prompt_ids(tok, rec.prompt), response_ids(tok, ranked[i]),
                                  response_ids(tok, ranked[j]))))
    return train, heldout
