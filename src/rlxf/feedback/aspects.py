"""Per-aspect preferences from feedback records, for a multi-objective reward model.

Aspect names differ by source; ASPECT_ALIASES maps them onto the lab's three H's (PKU-SafeRLHF's
"better" is helpfulness and "safer" harmlessness; HelpSteer2's "correctness" and UltraFeedback's
"truthfulness" are honesty). Aspects with no H (verbosity, complexity, coherence, ...) are left
out, not guessed.

Ratings become pairs: two responses to the same prompt rated by the same annotator, ordered on
each aspect where their ratings differ (equal ratings say nothing about the order and are
dropped). Comparing within one annotator cancels each rater's own offset on the scale -- a
lenient rater's 4 and a strict rater's 3 are never compared -- and the heads are trained with
the same Bradley-Terry likelihood as the scalar reward model, so their rewards are on the same
kind of scale. (An ordinal model of the Likert points would also use ratings that have no
partner; in the lab every response has one.)"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .quality import items_of, majority
from .record import FeedbackRecord

ASPECTS = ("helpful", "harmless", "honest")
ASPECT_ALIASES = {
    "helpful": ("helpful", "helpfulness", "better"),
    "harmless": ("harmless", "harmlessness", "safer", "safety"),
    "honest": ("honest", "honesty", "truthfulness", "correctness"),
}
_CANONICAL = {alias: a for a, aliases in ASPECT_ALIASES.items() for alias in aliases}


def canonical_aspect(name: str | None) -> str | None:
    """helpful / harmless / honest for a known aspect name (any case), else None."""
    return _CANONICAL.get((name or "").strip().lower())


@dataclass(frozen=True)
class AspectPair:
    aspect: str  # helpful | harmless | honest
    prompt: str
    prompt_id: str | None
    better: str
    worse: str
    annotator: str | None  # who judged it (None: a majority over several)


def rating_pairs(records: list[FeedbackRecord]) -> list[AspectPair]:
    """Pairs from rating records: within (prompt, context, annotator), every two distinct
    responses, on every aspect both were rated on with different scores."""
    groups: dict[tuple, dict[str, FeedbackRecord]] = {}
    for r in records:
        if r.type != "rating" or not r.ratings:
            continue
        key = (r.prompt, tuple((m.role, m.content) for m in r.context), r.annotator.id)
        groups.setdefault(key, {}).setdefault(r.responses[0], r)  # a response's first rating
    out = []
    for (prompt, _, annotator), by_text in groups.items():
        for x, y in itertools.combinations(by_text.values(), 2):
            for name, rx in x.ratings.items():
                aspect, ry = canonical_aspect(name), y.ratings.get(name)
                if aspect is None or ry is None or rx == ry:
                    continue
                better, worse = (x, y) if rx > ry else (y, x)
                out.append(AspectPair(aspect, prompt, x.prompt_id, better.responses[0],
                                      worse.responses[0], annotator))
    return out


def pairwise_aspect_pairs(records: list[FeedbackRecord]) -> list[AspectPair]:
    """Pairs from pairwise records that name their aspect in provenance.aspect (PKU-SafeRLHF's
    better / safer), one per item by majority (even splits dropped)."""
    aspect_of = {r.item_id: canonical_aspect(r.provenance.get("aspect")) for r in records
                 if r.type == "pairwise"}
    first = {}
    for r in records:  # the pairwise record of each item (another type may share its id)
        if r.type == "pairwise":
            first.setdefault(r.item_id, r)
    out = []
    for item_id, judgements in items_of(records).items():
        aspect, winner = aspect_of.get(item_id), majority(judgements)
        if aspect is None or winner is None:
            continue
        rec = first[item_id]
        better, worse = rec.responses if winner == "a" else rec.responses[::-1]
        out.append(AspectPair(aspect, rec.prompt, rec.prompt_id, better, worse, None))
    return out


def aspect_pairs(records: list[FeedbackRecord]) -> list[AspectPair]:
    return rating_pairs(records) + pairwise_aspect_pairs(records)
