"""A project's judgements as canonical feedback records (docs/FEEDBACK.md): the JSONL the
pipeline reads. Annotators appear only as their pseudonymous ids; notes and demographics never
leave the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..feedback.record import FeedbackRecord
from ..store import Annotator, Item, Judgement, Project, iso
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


def export_records(session, p: Project) -> list[FeedbackRecord]:
    return [to_record(p, row) for row in project_rows(session, p.id)]
