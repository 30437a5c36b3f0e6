"""What the admin dashboard shows: progress, agreement (from rlxf.feedback.quality, the same
numbers the pipeline reports), per-annotator reliability, gold accuracy, and flags."""

from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import func, select

from ..feedback.agreement import PAIRWISE_LABELS, gwet_ac1
from ..feedback.quality import (annotator_reliability, items_of, krippendorff_alpha, majority,
                                raw_agreement)
from ..store import Annotator, Assignment, Item, Judgement, Project, as_utc, iso
from .export import project_rows, to_record

# A flag is a reason to look, not a verdict: thresholds are loose on purpose.
MIN_GOLD = 3  # gold answers before gold accuracy can flag anyone
MIN_GOLD_ACCURACY = 0.6
# Disagreement flags use the majority of the *other* annotators of an item: with only two
# annotators nobody can tell which one is wrong (gold accuracy can), so no flag is raised.
MIN_MAJORITY_ITEMS = 5  # items with a majority among the others before agreement can flag
MIN_AGREEMENT = 0.4
MIN_MEDIAN_MS = 1500  # faster than this per pair, the annotator cannot have read it


def _gold_correct(gold: dict, j: Judgement) -> bool | None:
    if "choice" in gold:
        return (not j.tie) and j.choice == gold["choice"]
    if gold.get("tie"):
        return j.tie
    return None


def project_stats(session, p: Project) -> dict:
    rows = project_rows(session, p.id)
    records = [to_record(p, r) for r in rows]
    labels = list(items_of(records).values())
    n_items, n_gold = session.execute(
        select(func.count(Item.id).filter(Item.is_gold.is_(False)),
               func.count(Item.id).filter(Item.is_gold)).where(Item.project_id == p.id)).one()
    per_item = defaultdict(int)
    for r in rows:
        if not r.item.is_gold:
            per_item[r.item.id] += 1
    done = sum(per_item.values())

    people = {a.id: a for a in session.scalars(
        select(Annotator).join(Assignment, Assignment.annotator_id == Annotator.id)
        .where(Assignment.project_id == p.id).distinct())}
    assigned = dict(session.execute(
        select(Assignment.annotator_id, func.count(Assignment.id))
        .where(Assignment.project_id == p.id).group_by(Assignment.annotator_id)).all())
    stats = {aid: {"judgements": 0, "pairs": 0, "agree_majority": 0,
                   "majority_n": 0, "gold_n": 0, "gold_correct": 0, "durations": [],
                   "last": None}
             for aid in people}
    by_pid = {a.pid: aid for aid, a in people.items()}
    for r in rows:
        s = stats[r.annotator.id]
        s["judgements"] += 1
        created = as_utc(r.judgement.created)
        s["last"] = created if s["last"] is None else max(s["last"], created)
        if r.judgement.duration_ms is not None:
            s["durations"].append(r.judgement.duration_ms)
        if r.item.is_gold and r.item.gold:
            ok = _gold_correct(r.item.gold, r.judgement)
            if ok is not None:
                s["gold_n"] += 1
                s["gold_correct"] += ok
    for item in labels:
        for j in item:
            s = stats[by_pid[j["annotator"]]]
            others = [o for o in item if o is not j]
            s["pairs"] += len(others)
            m = majority(others) if len(others) >= 2 else None
            if m is not None:
                s["majority_n"] += 1
                s["agree_majority"] += j["choice"] == m

    reliability = annotator_reliability(labels)
    annotators = []
    for aid, a in sorted(people.items(), key=lambda kv: kv[1].pid):
        s = stats[aid]
        agreement = reliability.get(a.pid, {}).get("agreement/with_others")
        gold_acc = s["gold_correct"] / s["gold_n"] if s["gold_n"] else None
        median_ms = statistics.median(s["durations"]) if s["durations"] else None
        flags = []
        if gold_acc is not None and s["gold_n"] >= MIN_GOLD and gold_acc < MIN_GOLD_ACCURACY:
            flags.append(f"gold accuracy {gold_acc:.0%} on {s['gold_n']} gold items")
        with_majority = s["agree_majority"] / s["majority_n"] if s["majority_n"] else None
        if s["majority_n"] >= MIN_MAJORITY_ITEMS and with_majority < MIN_AGREEMENT:
            flags.append(f"agrees with the other annotators' majority on only "
                         f"{with_majority:.0%} of {s['majority_n']} items")
        if median_ms is not None and s["judgements"] >= 5 and median_ms < MIN_MEDIAN_MS:
            flags.append(f"median {median_ms / 1000:.1f} s per item: too fast to read")
        annotators.append({
            "pid": a.pid, "note": a.note, "group": a.group, "judgements": s["judgements"],
            "pending": assigned.get(aid, 0) - s["judgements"],
            "agreement/with_others": agreement, "agreement/pairs": s["pairs"],
            "agreement/with_majority": with_majority,
            "gold/n": s["gold_n"], "gold/accuracy": gold_acc, "median_ms": median_ms,
            "last_label": iso(s["last"]), "flags": flags})
    target = n_items * p.overlap
    return {
        "project": p.id,
        "progress": {"items": n_items, "gold_items": n_gold, "judgements": len(rows),
                     "judgements_regular": done, "target": target,
                     "fraction": done / target if target else None,
                     "items_complete": sum(c >= p.overlap for c in per_item.values()),
                     "annotators": len(people)},
        "agreement": {"raw": raw_agreement(labels),
                      "krippendorff_alpha": krippendorff_alpha(labels),
                      "gwet_ac1": gwet_ac1(labels, PAIRWISE_LABELS),
                      "items_with_overlap": sum(len(x) >= 2 for x in labels)},
        "annotators": annotators,
        "flagged": [a["pid"] for a in annotators if a["flags"]],
    }
