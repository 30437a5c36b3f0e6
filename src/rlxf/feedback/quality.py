"""Inter-annotator agreement: disagreement is information, so it is measured, not averaged away.

Functions take items: lists of {"annotator": id, "choice": label} judgements of one item
(`items_of` builds them from pairwise feedback records)."""

from __future__ import annotations

import itertools
from collections import defaultdict

import krippendorff
import numpy as np

from .record import FeedbackRecord


def items_of(records: list[FeedbackRecord]) -> dict[str, list[dict]]:
    """Pairwise records grouped by item_id, in first-seen order; ties are the label 'tie'.
    A curator's final label (a record with `adjudication`) is not a vote: see final_labels."""
    items: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.type == "pairwise" and r.adjudication is None:
            items[r.item_id].append({"annotator": r.annotator.id, "group": r.annotator.group,
                                     "choice": "tie" if r.tie else "ab"[r.choice]})
    return dict(items)


def final_labels(records: list[FeedbackRecord]) -> dict[str, str]:
    """item_id -> the label a curator decided ('a', 'b' or 'tie'; the last decision wins),
    for pairwise items reviewed in the annotation app. It overrides the majority."""
    return {r.item_id: "tie" if r.tie else "ab"[r.choice] for r in records
            if r.type == "pairwise" and r.adjudication is not None}


def raw_agreement(labels: list[list[dict]]) -> float | None:
    """Share of annotator pairs, over items labelled by two or more, that gave the same label."""
    agree = total = 0
    for item in labels:
        for x, y in itertools.combinations(item, 2):
            agree += x["choice"] == y["choice"]
            total += 1
    return agree / total if total else None


def krippendorff_alpha(labels: list[list[dict]]) -> float | None:
    """Nominal Krippendorff's alpha from the `krippendorff` package (annotators x items); any
    hashable labels (pairwise a / b / tie, or a curator's label keys of other tasks)."""
    annotators = sorted({j["annotator"] for item in labels for j in item})
    if len(annotators) < 2:
        return None
    row = {a: i for i, a in enumerate(annotators)}
    data = np.full((len(annotators), len(labels)), np.nan)
    # nominal: the codes' values carry no order, only identity
    codes = {c: float(i) for i, c in enumerate(sorted({j["choice"] for item in labels
                                                       for j in item}, key=str))}
    for col, item in enumerate(labels):
        for j in item:
            data[row[j["annotator"]], col] = codes[j["choice"]]
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except ValueError:  # e.g. every label identical: alpha is undefined
        return None


def majority(item: list[dict]) -> str | None:
    """'a' or 'b' by plurality of the annotators who expressed a preference; None if even."""
    a = sum(j["choice"] == "a" for j in item)
    b = sum(j["choice"] == "b" for j in item)
    return "a" if a > b else "b" if b > a else None


def annotator_reliability(labels: list[list[dict]]) -> dict[str, dict]:
    """Per annotator: judgements, and agreement with their co-annotators on the same items
    (pairwise, so no ties to break) -- reliability against consensus."""
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # judgements, agree, pairs
    for item in labels:
        for j in item:
            s = stats[j["annotator"]]
            s[0] += 1
            for other in item:
                if other is not j:
                    s[1] += other["choice"] == j["choice"]
                    s[2] += 1
    return {a: {"n_judgements": n, "agreement/with_others": agree / pairs if pairs else None}
            for a, (n, agree, pairs) in sorted(stats.items())}


def dawid_skene(labels: list[list[dict]], item_ids: list[str]) -> dict[str, str]:
    """Dawid-Skene (1979) aggregation from crowd-kit: each annotator's confusion matrix is
    estimated by EM, so a reliable minority can outvote a careless majority."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    rows = [{"task": item_id, "worker": j["annotator"], "label": j["choice"]}
            for item_id, item in zip(item_ids, labels) for j in item]
    if not rows:
        return {}
    result = DawidSkene(n_iter=100).fit_predict(pd.DataFrame(rows))
    return {str(task): str(label) for task, label in result.items()}


def bradley_terry_choices(labels: list[list[dict]]) -> list[str | None]:
    """Bradley-Terry aggregation from crowd-kit: a strength per response fitted to all
    judgements; each item's label is its stronger response (None when they are equal). With one
    pair per prompt this is close to the majority; it differs when responses recur across items
    (the same text compared with several others), where strength is shared evidence."""
    import pandas as pd
    from crowdkit.aggregation import BradleyTerry

    # Responses are identified by (item, side) unless the caller put texts in "left"/"right".
    rows = []
    for i, item in enumerate(labels):
        for j in item:
            if j["choice"] in ("a", "b"):
                left, right = j.get("left", f"{i}:a"), j.get("right", f"{i}:b")
                rows.append({"worker": j["annotator"], "left": left, "right": right,
                             "label": left if j["choice"] == "a" else right})
    if not rows:
        return [None] * len(labels)
    scores = BradleyTerry(n_iter=100).fit_predict(pd.DataFrame(rows)).to_dict()
    out = []
    for i, item in enumerate(labels):
        left = item[0].get("left", f"{i}:a") if item else f"{i}:a"
        right = item[0].get("right", f"{i}:b") if item else f"{i}:b"
        a, b = scores.get(left), scores.get(right)
        out.append(None if a is None or b is None or abs(a - b) < 1e-12
                   else "a" if a > b else "b")
    return out
