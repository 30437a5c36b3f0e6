"""Rating records -> preference pairs, the way HuggingFaceH4/ultrafeedback_binarized was built
from openbmb/UltraFeedback: per prompt, the completion with the highest overall score is chosen
and one of the completions scored strictly lower, drawn at random (seeded), is rejected.

The overall score of a rating record is, in order: `provenance.overall_score` (UltraFeedback's
critique score), else its `helpfulness` rating (HelpSteer2's quality attribute; its complexity
and verbosity are not quality), else the mean of its ratings. Among equally high completions
the first in the file is chosen (UltraFeedback-binarized's argmax). A prompt whose completions
all score the same has no pair (counted as `ties`), and so has a prompt with one rated
completion (counted as `single`). The draw depends only on the seed and the prompt, so the same
file gives the same pairs in any order and in every command.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from ..feedback.record import FeedbackRecord

QUALITY_RATING = "helpfulness"


@dataclass
class BinarizeResult:
    ratings: int = 0   # rating records read
    prompts: int = 0   # distinct prompts (context + prompt) among them
    pairs: int = 0     # pairs made: one per prompt at most
    ties: int = 0      # prompts whose completions all score the same: dropped
    single: int = 0    # prompts with one rated completion: dropped


def overall_score(rec: FeedbackRecord) -> float:
    if rec.provenance.get("overall_score") is not None:
        return float(rec.provenance["overall_score"])
    ratings = rec.ratings or {}
    if QUALITY_RATING in ratings:
        return float(ratings[QUALITY_RATING])
    return sum(ratings.values()) / len(ratings)


def _prompt_key(rec: FeedbackRecord) -> str:
    return json.dumps([[m.model_dump() for m in rec.context], rec.prompt], sort_keys=True,
                      ensure_ascii=False)


def binarize_ratings(records: list[FeedbackRecord], seed: int = 0
                     ) -> tuple[list[tuple[FeedbackRecord, str, str]], BinarizeResult]:
    """(chosen's record, chosen, rejected) per prompt with a pair, in file order; what was
    dropped is counted in the result."""
    result = BinarizeResult()
    by_prompt: dict[str, list[tuple[FeedbackRecord, float]]] = {}
    for r in records:
        if r.type != "rating":
            continue
        result.ratings += 1
        scored = by_prompt.setdefault(_prompt_key(r), [])
        if r.responses[0] not in (s.responses[0] for s, _ in scored):  # one vote per text
            scored.append((r, overall_score(r)))
    result.prompts = len(by_prompt)
    out = []
    for key, scored in by_prompt.items():
        if len(scored) < 2:
            result.single += 1
            continue
        best = max(score for _, score in scored)
        chosen = next(r for r, score in scored if score == best)
        lower = [r for r, score in scored if score < best]
        if not lower:
            result.ties += 1
            continue
        digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
        rejected = random.Random(digest).choice(lower)
        out.append((chosen, chosen.responses[0], rejected.responses[0]))
    result.pairs = len(out)
    return out, result
