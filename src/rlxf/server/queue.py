"""An annotator's queue: handing out assignments (overlap k, gold items mixed in) and storing
judgements exactly once.

Exactly once: every submission carries a client-chosen key; (annotator, key) is unique in the
database, so a retry after a lost response -- or after a server crash -- finds the stored row
and gets the same answer back instead of a second row.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..store import Assignment, Item, Judgement, Project, Store, iso
from .errors import APIError
from .security import User

KEY = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")


class JudgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY.pattern, description="idempotency key, unique per submission")
    choice: Literal[0, 1] | None = None
    tie: bool = False
    strength: int | None = Field(None, ge=1, le=10)
    ratings: dict[str, int] | None = Field(None, max_length=10)
    duration_ms: int | None = Field(None, ge=0, le=86_400_000)


def _check_fits(j: JudgementIn, p: Project) -> None:
    if p.task_type == "pairwise":
        if j.ratings is not None:
            raise APIError(422, "a pairwise judgement has no ratings")
        if j.tie == (j.choice is not None):
            raise APIError(422, 'send "choice": 0 or 1, or "tie": true (not both)')
        if j.tie and j.strength is not None:
            raise APIError(422, "a tie has no strength")
        if j.strength is not None and not 1 <= j.strength <= p.scale:
            raise APIError(422, f'"strength" must be 1..{p.scale}, got {j.strength}')
    else:
        if j.choice is not None or j.tie or j.strength is not None:
            raise APIError(422, "a likert judgement has only ratings")
        if not j.ratings or set(j.ratings) != set(p.aspects):
            raise APIError(422, f'"ratings" needs exactly the aspects {p.aspects}')
        bad = {a: v for a, v in j.ratings.items() if not 1 <= v <= p.scale}
        if bad:
            raise APIError(422, f'ratings must be 1..{p.scale}, got {bad}')


def record_id(item_id: str, pid: str) -> str:
    """The exported record's id: one judgement per (item, annotator)."""
    return f"{item_id}/{pid}"


def _get_project(session, project_id: int, for_work: bool = False) -> Project:
    p = session.get(Project, project_id)
    if p is None:
        raise APIError(404, f"no project {project_id}")
    if for_work and p.status != "open":
        raise APIError(409, f"project {project_id} is closed")
    return p


def _own_assignment(session, user: User, assignment_id: int):
    row = session.execute(select(Assignment, Item, Project)
                          .join(Item, Item.id == Assignment.item_id)
                          .join(Project, Project.id == Assignment.project_id)
                          .where(Assignment.id == assignment_id)).first()
    if row is None:
        raise APIError(404, f"no assignment {assignment_id}")
    if row.Assignment.annotator_id != user.id:
        raise APIError(403, f"assignment {assignment_id} belongs to another annotator")
    return row


def judgement_json(j: Judgement | None) -> dict | None:
    if j is None:
        return None
    return {"choice": j.choice, "tie": j.tie, "strength": j.strength, "ratings": j.ratings,
            "key": j.key, "created": iso(j.created)}


def assignment_json(a: Assignment, item: Item, j: Judgement | None) -> dict:
    return {"id": a.id, "position": a.position, "item_id": item.item_id, "prompt": item.prompt,
            "context": item.context, "responses": item.responses, "judgement": judgement_json(j)}


def next_assignments(store: Store, user: User, project_id: int, n: int) -> list[dict]:
    """The annotator's first `n` unlabelled assignments, topping the queue up with new items:
    items closest to k judgements first (so overlap, and agreement, appear early), and a gold
    item whenever the annotator's gold share falls below the project's gold rate."""
    with store.write() as s:
        p = _get_project(s, project_id, for_work=True)
        pending = s.execute(
            select(Assignment, Item).join(Item, Item.id == Assignment.item_id)
            .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
            .where(Assignment.annotator_id == user.id, Assignment.project_id == p.id,
                   Judgement.id.is_(None))
            .order_by(Assignment.position).limit(n)).all()
        out = [assignment_json(a, it, None) for a, it in pending]
        need = n - len(out)
        if need <= 0:
            return out
        mine = select(Assignment.item_id).where(Assignment.annotator_id == user.id,
                                                Assignment.project_id == p.id)
        n_mine, n_gold_mine, last = s.execute(
            select(func.count(Assignment.id), func.count(Assignment.id).filter(Item.is_gold),
                   func.max(Assignment.position))
            .join(Item, Item.id == Assignment.item_id)
            .where(Assignment.annotator_id == user.id, Assignment.project_id == p.id)).one()
        position = (last or 0) + 1
        regular = list(s.scalars(
            select(Item.id).where(Item.project_id == p.id, Item.is_gold.is_(False),
                                  Item.n_assigned < p.overlap, Item.id.not_in(mine))
            .order_by(Item.n_assigned.desc(), Item.position).limit(2 * need + 10)))
        gold = list(s.scalars(
            select(Item.id).where(Item.project_id == p.id, Item.is_gold.is_(True),
                                  Item.id.not_in(mine))
            .order_by(Item.position).limit(need))) if p.gold_rate > 0 else []
        new_ids = []
        while len(new_ids) < need:
            if gold and n_gold_mine + 1 <= p.gold_rate * (n_mine + 1):
                item_id = gold.pop(0)
                n_gold_mine += 1
                s.execute(update(Item).where(Item.id == item_id)
                          .values(n_assigned=Item.n_assigned + 1))
            elif regular:
                item_id = regular.pop(0)
                # conditional: another annotator may have taken the k-th slot meanwhile
                taken = s.execute(update(Item).where(Item.id == item_id,
                                                     Item.n_assigned < p.overlap)
                                  .values(n_assigned=Item.n_assigned + 1)).rowcount
                if not taken:
                    continue
            else:
                break  # no real work left: gold items alone would measure nothing useful
            s.add(Assignment(project_id=p.id, annotator_id=user.id, item_id=item_id,
                             position=position))
            position += 1
            n_mine += 1
            new_ids.append(item_id)
        s.flush()
        if new_ids:
            fresh = s.execute(select(Assignment, Item).join(Item, Item.id == Assignment.item_id)
                              .where(Assignment.annotator_id == user.id,
                                     Assignment.item_id.in_(new_ids))
                              .order_by(Assignment.position)).all()
            out += [assignment_json(a, it, None) for a, it in fresh]
        return out


def my_assignments(store: Store, user: User, project_id: int, done: bool | None,
                   limit: int, before: int | None = None) -> list[dict]:
    """The annotator's assignments, newest position first (for going back and undo)."""
    with store.read() as s:
        _get_project(s, project_id)
        q = (select(Assignment, Item, Judgement).join(Item, Item.id == Assignment.item_id)
             .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
             .where(Assignment.annotator_id == user.id, Assignment.project_id == project_id))
        if done is not None:
            q = q.where(Judgement.id.is_not(None) if done else Judgement.id.is_(None))
        if before is not None:
            q = q.where(Assignment.position < before)
        rows = s.execute(q.order_by(Assignment.position.desc()).limit(limit)).all()
        return [assignment_json(a, it, j) for a, it, j in rows]


def get_assignment(store: Store, user: User, assignment_id: int) -> dict:
    with store.read() as s:
        row = _own_assignment(s, user, assignment_id)
        return assignment_json(row.Assignment, row.Item, row.Assignment.judgement)


def submit(store: Store, user: User, assignment_id: int, body: JudgementIn,
           replace: bool = False) -> tuple[dict, bool]:
    """Store a judgement; returns (answer, created). A retried key returns the stored answer."""
    try:
        return _submit_once(store, user, assignment_id, body, replace)
    except IntegrityError:
        # A concurrent retry of the same key (or the same assignment) won the race; the second
        # attempt finds its row and answers as a duplicate.
        return _submit_once(store, user, assignment_id, body, replace)


def _submit_once(store: Store, user: User, assignment_id: int, body: JudgementIn,
                 replace: bool) -> tuple[dict, bool]:
    with store.write() as s:
        row = _own_assignment(s, user, assignment_id)
        a, item, p = row.Assignment, row.Item, row.Project
        _check_fits(body, p)
        rid = record_id(item.item_id, user.pid)
        # On PostgreSQL (read committed) each query sees the latest commits, so a concurrent
        # retry may land between these two reads: both check for the key on this assignment.
        current = s.scalar(select(Judgement).where(Judgement.assignment_id == a.id))
        same_key = current if current is not None and current.key == body.key else s.scalar(
            select(Judgement).where(Judgement.annotator_id == user.id, Judgement.key == body.key))
        if same_key is not None:
            if same_key.assignment_id != a.id:
                raise APIError(409, f"key {body.key!r} was already used for another assignment")
            return {"id": rid, "assignment": a.id, "duplicate": True,
                    "judgement": judgement_json(same_key)}, False
        values = {"key": body.key, "choice": body.choice, "tie": body.tie,
                  "strength": body.strength, "ratings": body.ratings,
                  "duration_ms": body.duration_ms}
        if current is not None:
            if not replace:
                raise APIError(409, f"assignment {a.id} is already labelled: PUT to change it, "
                                    "DELETE to undo")
            for k, v in values.items():
                setattr(current, k, v)
            j = current
        else:
            j = Judgement(project_id=p.id, assignment_id=a.id, annotator_id=user.id,
                          item_id=item.id, **values)
            s.add(j)
        s.flush()
        return {"id": rid, "assignment": a.id, "duplicate": False,
                "judgement": judgement_json(j)}, True


def undo(store: Store, user: User, assignment_id: int) -> dict:
    with store.write() as s:
        row = _own_assignment(s, user, assignment_id)
        n = s.execute(delete(Judgement).where(Judgement.assignment_id == assignment_id)).rowcount
        if not n:
            raise APIError(404, f"assignment {assignment_id} has no judgement to undo")
        return {"assignment": assignment_id, "undone": True, "item_id": row.Item.item_id}


def progress(store: Store, user: User, project_id: int) -> dict:
    with store.read() as s:
        p = _get_project(s, project_id)
        done, assigned = s.execute(
            select(func.count(Judgement.id), func.count(Assignment.id))
            .select_from(Assignment)
            .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
            .where(Assignment.annotator_id == user.id, Assignment.project_id == p.id)).one()
        open_slots = s.scalar(select(func.coalesce(func.sum(p.overlap - Item.n_assigned), 0))
                              .where(Item.project_id == p.id, Item.is_gold.is_(False),
                                     Item.n_assigned < p.overlap))
        return {"done": done, "assigned": assigned, "pending": assigned - done,
                "open_slots": int(open_slots or 0)}
