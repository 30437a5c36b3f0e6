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
    """Dawid-Skene (1979) aggregation: each annotator's confusion matrix is estimated by EM, so
    a reliable minority can outvote a careless majority (`dawid_skene_em`)."""
    rows = [(item_id, j["annotator"], j["choice"])
            for item_id, item in zip(item_ids, labels) for j in item]
    if not rows:
        return {}
    tasks, classes, probas, _ = dawid_skene_em(rows)
    return {str(task): str(classes[k]) for task, k in zip(tasks, probas.argmax(axis=1))}


DS_EPS = 1e-10  # crowd-kit's floor on probabilities before their logs


def dawid_skene_em(rows: list[tuple], n_iter: int = 100, tol: float = 1e-5):
    """(tasks, classes, P[task, class], iterations) of crowd-kit 1.4's DawidSkene(n_iter, tol)
    on (task, worker, label) rows, step for step in numpy: a majority-vote start, then E and M
    steps until the evidence lower bound per row gains less than `tol`; classes sorted, so
    argmax breaks a tie as crowd-kit's idxmax does. crowd-kit runs each step through pandas
    (~60 ms an iteration on 360 rows, the feedback stage's largest cost);
    tests/test_annotators.py checks this against it."""
    tasks = list(dict.fromkeys(r[0] for r in rows))
    workers = list(dict.fromkeys(r[1] for r in rows))
    classes = sorted({r[2] for r in rows})
    index = ({x: i for i, x in enumerate(tasks)}, {x: i for i, x in enumerate(workers)},
             {x: i for i, x in enumerate(classes)})
    t, w, c = (np.array([ix[r[k]] for r in rows]) for k, ix in enumerate(index))
    n_tasks, n_workers, n_classes = len(tasks), len(workers), len(classes)
    used = np.zeros((n_workers, n_classes), bool)  # the (worker, label) pairs that occur
    used[w, c] = True

    def m_step(probas):  # errors[worker, observed, true], normalised over the observed labels used
        errors = np.zeros((n_workers, n_classes, n_classes))
        np.add.at(errors, (w, c), probas[t])
        errors = np.where(used[:, :, None], np.maximum(errors, DS_EPS), 0.0)
        return errors / errors.sum(axis=1, keepdims=True)

    votes = np.zeros((n_tasks, n_classes))
    np.add.at(votes, (t, c), 1.0)
    probas = votes / votes.sum(axis=1, keepdims=True)
    priors, errors = probas.mean(axis=0), m_step(probas)
    loss, done = -np.inf, 0
    for done in range(1, n_iter + 1):
        log_likelihood = np.zeros((n_tasks, n_classes))
        np.add.at(log_likelihood, t, np.log2(errors[w, c]))
        log_likelihood += np.log2(np.maximum(priors, DS_EPS))
        scaled = np.exp2(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
        probas = scaled / scaled.sum(axis=1, keepdims=True)
        priors = np.maximum(probas.mean(axis=0), DS_EPS)
        errors = m_step(probas)
        joint = (probas[t] * (np.log(errors[w, c]) + np.log(priors))).sum()
        probas = np.maximum(probas, DS_EPS)
        new_loss = (joint - (np.log(probas) * probas).sum()) / len(rows)
        if new_loss - loss < tol:
            break
        loss = new_loss
    return tasks, classes, probas, done


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
