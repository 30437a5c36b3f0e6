"""A project's judgements as canonical feedback records (docs/FEEDBACK.md): the JSONL the
pipeline reads. Annotators appear only as their pseudonymous ids; notes and demographics never
leave the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..feedback.record import FeedbackRecord
from ..store import Annotator, Decision, Item, Judgement, Project, iso
from . import tasks
from .queue import record_id


@dataclass
class Row:
    judgement: Judgement
    item: Item
    annotator: Annotator


def project_rows(session, project_id: int) -> list[Row]:
    rows = session.execute(
        select(Judgement, Item, Annotator).join(Item, Item.id == Judgement.item_id)
        .join(Annotator, Annotator.id == Judgement.annotator_id)
        .where(Judgement.project_id == project_id)
        .order_by(Item.position, Judgement.id)).all()
    return [Row(*r) for r in rows]


def scale_note(p: Project) -> str:
    return tasks.scale_note(p.task_type, p.scale)


def to_record(p: Project, row: Row) -> FeedbackRecord:
    j, it, a = row.judgement, row.item, row.annotator
    provenance = {**{k: v for k, v in it.provenance.items() if k != "source_labels"},
                  "app": "rlxf annotate", "project": p.name, "project_id": p.id,
                  "scale": scale_note(p), "gold": it.is_gold, "submission": j.key}
    if j.duration_ms is not None:
        provenance["duration_ms"] = j.duration_ms
    common = dict(id=record_id(it.item_id, a.pid), item_id=it.item_id, prompt=it.prompt,
                  context=it.context, prompt_id=it.prompt_id, responses=it.responses,
                  annotator={"id": a.pid, "group": a.group}, source="human",
                  created=iso(j.created), provenance=provenance)
    if p.task_type != "pairwise":
        provenance["task"] = p.task_type
    return FeedbackRecord(**tasks.record_fields(p.task_type, j), **common)


def decision_record(p: Project, d: Decision, it: Item, curator: Annotator,
                    accepted_from: str | None) -> FeedbackRecord:
    """An item's final label decided by a curator (server/curation.py): who decided, how, and
    from whose label, in `adjudication`; the curator is its annotator."""
    provenance = {**{k: v for k, v in it.provenance.items() if k != "source_labels"},
                  "app": "rlxf annotate", "project": p.name, "project_id": p.id,
                  "scale": scale_note(p), "gold": it.is_gold, "decision": d.id}
    if p.task_type != "pairwise":
        provenance["task"] = p.task_type
    adjudication = {"by": curator.pid, "method": d.method, "accepted_from": accepted_from,
                    "reason": d.reason or None, "note": d.note or None, "decided": iso(d.created)}
    return FeedbackRecord(**tasks.record_fields(p.task_type, d), id=f"{it.item_id}/decision",
                          item_id=it.item_id, prompt=it.prompt, context=it.context,
                          prompt_id=it.prompt_id, responses=it.responses,
                          annotator={"id": curator.pid, "group": curator.group}, source="human",
                          created=iso(d.created), provenance=provenance,
                          adjudication=adjudication)


def latest_decisions(session, project_id: int) -> list[tuple[Decision, Item, Annotator]]:
    """The newest decision of every decided item, in item order."""
    newest = (select(func.max(Decision.id)).where(Decision.project_id == project_id)
              .group_by(Decision.item_id))
    return [tuple(r) for r in session.execute(
        select(Decision, Item, Annotator).join(Item, Item.id == Decision.item_id)
        .join(Annotator, Annotator.id == Decision.curator_id)
        .where(Decision.id.in_(newest)).order_by(Item.position)).all()]


def export_records(session, p: Project) -> list[FeedbackRecord]:
    """Every judgement, then every reviewed item's final label."""
    decided = latest_decisions(session, p.id)
    sources = {d.accepted_from for d, _, _ in decided} - {None}
    pids = dict(session.execute(select(Annotator.id, Annotator.pid)
                                .where(Annotator.id.in_(sources))).all()) if sources else {}
    return ([to_record(p, row) for row in project_rows(session, p.id)]
            + [decision_record(p, d, it, curator, pids.get(d.accepted_from))
               for d, it, curator in decided])
