"""The curator's tools: every judgement of an item side by side, agreement per item and on a
chosen subset of annotators or items (raw, Krippendorff's alpha, Gwet's AC1), and the review
queue -- items where annotators disagree or a gold answer was missed -- where a curator
accepts one annotator's label or sets the final one. Decisions are kept (append-only) and the
newest per item is exported as the item's final label, naming who decided (export.py).

Curators are admins. Labels are compared exactly: pairwise a / b / tie; a ranking as its
weak order ("2>0=1"); Likert and steps as all their ratings. Edits and critiques are free text
and have no agreement."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from pydantic import ConfigDict, Field
from sqlalchemy import select

from ..feedback.agreement import PAIRWISE_LABELS, item_agreement, select as select_labels
from ..feedback.agreement import summary
from ..store import Annotator, Decision, Item, Judgement, Project, iso
from . import tasks
from .errors import APIError
from .export import latest_decisions, project_rows
from .projects import NO_NUL
from .queue import JudgementIn
from .security import User

DISAGREEMENT, FAILED_GOLD = "disagreement", "failed gold"


def label_key(task: str, j) -> str | None:
    """What two judgements must share to agree (None: free text, never compared)."""
    if task == "pairwise":
        return "tie" if j.tie else "ab"[j.choice]
    if task == "ranking":
        groups = {i: g for g in j.ties or [] for i in g}
        out, done = [], set()
        for i in j.ranking:
            if i not in done:
                group = groups.get(i, [i])
                done |= set(group)
                out.append("=".join(map(str, group)))
        return ">".join(out)
    if task in ("likert", "steps"):
        return json.dumps(j.ratings, sort_keys=True)
    return None


def gold_key(gold: dict | None) -> str | None:
    if not gold:
        return None
    if gold.get("tie"):
        return "tie"
    return "ab"[gold["choice"]] if "choice" in gold else None


def _project(session, project_id: int) -> Project:
    p = session.get(Project, project_id)
    if p is None:
        raise APIError(404, f"no project {project_id}")
    return p


def _by_item(session, p: Project) -> dict[str, dict]:
    """item_id -> {"item": Item, "judgements": [(Judgement, Annotator)]}, in item order."""
    out: dict[str, dict] = {}
    for row in project_rows(session, p.id):
        out.setdefault(row.item.item_id, {"item": row.item, "judgements": []})[
            "judgements"].append((row.judgement, row.annotator))
    return out


def _labels(task: str, by_item: dict[str, dict]) -> dict[str, list[dict]]:
    return {item_id: [{"annotator": a.pid, "choice": k} for j, a in v["judgements"]
                      if (k := label_key(task, j)) is not None]
            for item_id, v in by_item.items()}


def _categories(task: str, labels: dict[str, list[dict]]) -> tuple:
    """Gwet's q: the labels a pairwise task offers; for the others, the labels observed."""
    if task == "pairwise":
        return PAIRWISE_LABELS
    return tuple(sorted({j["choice"] for item in labels.values() for j in item}))


def agreement(session, project_id: int, annotators: list[str] | None = None,
              items: list[str] | None = None) -> dict:
    """Raw agreement, Krippendorff's alpha and Gwet's AC1 on the chosen annotators and items
    (None: all), with every item's own agreement, lowest first."""
    p = _project(session, project_id)
    labels = select_labels(_labels(p.task_type, _by_item(session, p)), annotators, items)
    per_item = [{"item_id": i, "judgements": len(js), "agreement": item_agreement(js),
                 "labels": dict(Counter(j["choice"] for j in js))}
                for i, js in labels.items()]
    per_item.sort(key=lambda x: (x["agreement"] is None, x["agreement"] or 0))
    return {"project": p.id, "task": p.task_type,
            "chosen": {"annotators": annotators, "items": items},
            **summary(labels, _categories(p.task_type, labels)), "per_item": per_item}


def _judgement_json(task: str, j: Judgement, a: Annotator) -> dict:
    return {"annotator": a.pid, "group": a.group, "label": label_key(task, j),
            "choice": j.choice, "tie": j.tie, "strength": j.strength, "ratings": j.ratings,
            "ranking": j.ranking, "ties": j.ties, "text": j.text,
            "duration_ms": j.duration_ms, "created": iso(j.created)}


def _decision_json(task: str, d: Decision, pids: dict[int, str]) -> dict:
    return {"id": d.id, "by": pids.get(d.curator_id), "method": d.method,
            "accepted_from": pids.get(d.accepted_from), "reason": d.reason, "note": d.note,
            "label": label_key(task, d),
            "choice": d.choice, "tie": d.tie, "strength": d.strength, "ratings": d.ratings,
            "ranking": d.ranking, "ties": d.ties, "text": d.text, "created": iso(d.created)}


def _reasons(task: str, item: Item, judgements: list) -> list[str]:
    keys = [label_key(task, j) for j, _ in judgements]
    out = []
    if len(judgements) >= 2 and None not in keys and len(set(keys)) > 1:
        out.append(DISAGREEMENT)
    gold = gold_key(item.gold) if item.is_gold else None
    if gold is not None and any(k != gold for k in keys):
        out.append(FAILED_GOLD)
    return out


def _pids(session, ids) -> dict[int, str]:
    ids = set(ids) - {None}
    return dict(session.execute(select(Annotator.id, Annotator.pid)
                                .where(Annotator.id.in_(ids))).all()) if ids else {}


def item_view(session, project_id: int, item_id: str) -> dict:
    """One item with every judgement of it, its agreement, why it is in review, and the
    curators' decisions, newest first."""
    p = _project(session, project_id)
    item = session.scalar(select(Item).where(Item.project_id == p.id, Item.item_id == item_id))
    if item is None:
        raise APIError(404, f"project {p.id} has no item {item_id!r}")
    rows = session.execute(select(Judgement, Annotator)
                           .join(Annotator, Annotator.id == Judgement.annotator_id)
                           .where(Judgement.item_id == item.id).order_by(Judgement.id)).all()
    decisions = list(session.scalars(select(Decision).where(Decision.item_id == item.id)
                                     .order_by(Decision.id.desc())))
    pids = _pids(session, [d.curator_id for d in decisions]
                 + [d.accepted_from for d in decisions])
    labels = [{"annotator": a.pid, "choice": k} for j, a in rows
              if (k := label_key(p.task_type, j)) is not None]
    return {"project": p.id, "task": p.task_type, "item_id": item.item_id, "prompt": item.prompt,
            "context": item.context, "responses": item.responses, "gold": item.is_gold,
            "gold_answer": gold_key(item.gold) if item.is_gold else None,
            "judgements": [_judgement_json(p.task_type, j, a) for j, a in rows],
            "agreement": item_agreement(labels),
            "labels": dict(Counter(x["choice"] for x in labels)),
            "reasons": _reasons(p.task_type, item, rows),
            "decisions": [_decision_json(p.task_type, d, pids) for d in decisions]}


def review_queue(session, project_id: int, status: str = "open") -> dict:
    """Items with disagreement or a missed gold answer: `open` (not decided yet), `decided`,
    or `all`; lowest agreement first."""
    p = _project(session, project_id)
    by_item = _by_item(session, p)
    decided = {it.item_id: d for d, it, _ in latest_decisions(session, p.id)}
    pids = _pids(session, [d.curator_id for d in decided.values()])
    out, counts = [], defaultdict(int)
    for item_id, v in by_item.items():
        reasons = _reasons(p.task_type, v["item"], v["judgements"])
        d = decided.get(item_id)
        if not reasons and d is None:
            continue
        counts["decided" if d else "open"] += 1
        if status != "all" and (status == "decided") != (d is not None):
            continue
        keys = [label_key(p.task_type, j) for j, _ in v["judgements"]]
        known = [{"annotator": a.pid, "choice": k}
                 for (j, a), k in zip(v["judgements"], keys) if k is not None]
        out.append({"item_id": item_id, "prompt": v["item"].prompt, "reasons": reasons,
                    "judgements": len(keys), "agreement": item_agreement(known),
                    "labels": dict(Counter(k for k in keys if k is not None)),
                    "gold_answer": gold_key(v["item"].gold) if v["item"].is_gold else None,
                    "decision": None if d is None else {
                        "by": pids.get(d.curator_id), "method": d.method,
                        "label": label_key(p.task_type, d), "created": iso(d.created)}})
    out.sort(key=lambda x: (x["agreement"] is None, x["agreement"] or 0))
    return {"project": p.id, "task": p.task_type, "status": status, "open": counts["open"],
            "decided": counts["decided"], "items": out}


class DecisionIn(JudgementIn):
    """`accept`: the annotator whose label becomes final; or the final label itself in the
    task's fields (as a judgement: choice / tie / strength, ratings, ranking / ties, text,
    steps). `note`: why, for the record."""
    model_config = ConfigDict(extra="forbid")
    key: str | None = None  # a decision needs no idempotency key: each one is history
    item_id: str = Field(min_length=1, max_length=200, pattern=NO_NUL.pattern)
    accept: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    note: str = Field("", max_length=1000, pattern=NO_NUL.pattern)


def decide(session, project_id: int, curator: User, body: DecisionIn) -> dict:
    """Record a curator's final label for an item; returns the item view."""
    p = _project(session, project_id)
    item = session.scalar(select(Item).where(Item.project_id == p.id,
                                             Item.item_id == body.item_id))
    if item is None:
        raise APIError(404, f"project {p.id} has no item {body.item_id!r}")
    given = tasks.FIELDS[p.task_type] & {k for k in body.model_fields_set
                                         if getattr(body, k) not in (None, False)}
    if (body.accept is None) == (not given):
        raise APIError(422, 'send "accept" (the annotator whose label is final) or the final '
                            f"label in {sorted(tasks.FIELDS[p.task_type])}, not both")
    rows = session.execute(select(Judgement, Annotator)
                           .join(Annotator, Annotator.id == Judgement.annotator_id)
                           .where(Judgement.item_id == item.id)).all()
    reason = ", ".join(_reasons(p.task_type, item, rows)) or "chosen by the curator"
    if body.accept is not None:
        match = [(j, a) for j, a in rows if a.pid == body.accept]
        if not match:
            raise APIError(404, f"{body.accept!r} has no judgement of item {body.item_id!r}")
        j, a = match[0]
        label = {c: getattr(j, c) for c in ("choice", "tie", "strength", "ratings", "ranking",
                                            "ties", "text")}
        method, source = "accepted", a.id
    else:
        tasks.check(p.task_type, body, p.scale, p.aspects, item.responses)
        label, method, source = tasks.stored(p.task_type, body), "set", None
    session.add(Decision(project_id=p.id, item_id=item.id, curator_id=curator.id, method=method,
                         accepted_from=source, reason=reason, note=body.note, **label))
    session.flush()
    return item_view(session, p.id, item.item_id)
