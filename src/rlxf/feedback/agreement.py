"""Agreement for curators: per item, on a chosen subset of annotators or items, and Gwet's AC1
beside Krippendorff's alpha and raw agreement.

Labels are items as `quality.items_of` builds them: {item_id: [{"annotator": id, "choice":
label}, ...]}. Any hashable label works here; `categories` are the labels the task offers
(pairwise: a, b, tie), which Gwet's chance agreement needs whether or not each was used.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Iterable, Sequence

from .quality import krippendorff_alpha, raw_agreement

PAIRWISE_LABELS = ("a", "b", "tie")


def item_agreement(item: list[dict]) -> float | None:
    """Share of this item's annotator pairs that gave the same label (Gwet's per-item p_a:
    Σ_k r_k (r_k - 1) / (r (r - 1))); None with fewer than two judgements."""
    r = len(item)
    if r < 2:
        return None
    counts = Counter(j["choice"] for j in item)
    return sum(c * (c - 1) for c in counts.values()) / (r * (r - 1))


def gwet_ac1(labels: Iterable[list[dict]], categories: Sequence[Hashable]) -> float | None:
    """Gwet's AC1 for any number of raters with missing ratings (Gwet 2008, BJMSP 61:29-48;
    Handbook of Inter-Rater Reliability, 4th ed., 2014, ch. 2):
    AC1 = (p_a - p_e) / (1 - p_e), p_a = mean over items rated twice or more of the item's
    agreement, p_e = Σ_k π_k (1 - π_k) / (q - 1), π_k = mean over items rated at least once of
    r_ik / r_i, q = the number of categories offered. None when undefined (no item rated twice,
    or q < 2)."""
    items = [it for it in labels if it]
    q = len(categories)
    per_item = [a for a in map(item_agreement, items) if a is not None]
    if not per_item or q < 2:
        return None
    unknown = {j["choice"] for it in items for j in it} - set(categories)
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} are not among the categories "
                         f"{list(categories)}")
    p_a = sum(per_item) / len(per_item)
    pi = Counter()
    for it in items:
        for j in it:
            pi[j["choice"]] += 1 / (len(it) * len(items))
    p_e = sum(p * (1 - p) for p in pi.values()) / (q - 1)
    return (p_a - p_e) / (1 - p_e)


def select(labels: dict[str, list[dict]], annotators: Iterable[str] | None = None,
           items: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """The judgements of only these annotators on only these items (None: all of them)."""
    who = set(annotators) if annotators is not None else None
    which = set(items) if items is not None else None
    out = {}
    for item_id, judgements in labels.items():
        if which is not None and item_id not in which:
            continue
        kept = [j for j in judgements if who is None or j["annotator"] in who]
        if kept:
            out[item_id] = kept
    return out


def summary(labels: dict[str, list[dict]], categories: Sequence[Hashable] = PAIRWISE_LABELS
            ) -> dict:
    """Raw agreement, Krippendorff's alpha (nominal) and Gwet's AC1 side by side, with what
    they were computed on: alpha is low when one label dominates even if annotators agree
    (the kappa paradox); AC1's chance term shrinks then, so the two read differently."""
    items = list(labels.values())
    return {"raw": raw_agreement(items), "krippendorff_alpha": krippendorff_alpha(items),
            "gwet_ac1": gwet_ac1(items, categories),
            "items": len(items), "items_with_overlap": sum(len(x) >= 2 for x in items),
            "judgements": sum(map(len, items)),
            "annotators": len({j["annotator"] for x in items for j in x})}
