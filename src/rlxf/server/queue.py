"""An annotator's queue: handing out assignments (overlap k, gold items mixed in) and storing
judgements exactly once.

Exactly once: every submission carries a client-chosen key; (annotator, key) is unique in the
database, so a retry after a lost response -- or after a server crash -- finds the stored row
and gets the same answer back instead of a second row.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from types import SimpleNamespace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..store import Assignment, Item, Judgement, Project, ProjectMember, Store, iso
from ..store.conflicts import retry_conflicts
from . import tasks
from .errors import APIError
from .membership import check_member, check_writable, is_member
from .security import User, utcnow

KEY = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")


class JudgementIn(BaseModel):
    """One judgement; which fields it needs depends on the project's task (server/tasks.py)."""
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY.pattern, description="idempotency key, unique per submission")
    choice: Literal[0, 1] | None = None
    tie: bool = False
    strength: int | None = Field(None, ge=1, le=10)
    ratings: dict[str, int] | None = Field(None, max_length=10)
    ranking: list[Annotated[int, Field(ge=0, le=tasks.MAX_RANKED)]] | None = Field(
        None, max_length=tasks.MAX_RANKED, description="ranking: response indices, best first")
    ties: list[list[Annotated[int, Field(ge=0, le=tasks.MAX_RANKED)]]] | None = Field(
        None, max_length=tasks.MAX_RANKED, description="ranking: groups of tied responses")
    text: str | None = Field(None, max_length=20_000, pattern=r"^[^\x00]*$",
                             description="edit: the corrected response; critique: the critique")
    steps: list[bool] | None = Field(None, max_length=tasks.MAX_STEPS,
                                     description="steps: per step (line), true = correct")
    duration_ms: int | None = Field(None, ge=0, le=86_400_000)


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
            "ranking": j.ranking, "ties": j.ties, "text": j.text, "key": j.key,
            "created": iso(j.created)}


def assignment_json(a: Assignment, item: Item, j: Judgement | None) -> dict:
    return {"id": a.id, "position": a.position, "item_id": item.item_id, "prompt": item.prompt,
            "context": item.context, "responses": item.responses, "judgement": judgement_json(j)}


ITEM_COLUMNS = (Item.item_id, Item.prompt, Item.context, Item.responses)
# The hot statements are built once (with bind parameters): building and cache-keying a
# statement per request cost more than executing it (py-spy on bench/annotate_load.py).
_PROJECT = select(Project.id, Project.status, Project.overlap, Project.gold_rate,
                  Project.members_only).where(Project.id == bindparam("project"))
_MINE = (Assignment.annotator_id == bindparam("annotator"),
         Assignment.project_id == bindparam("project"))
_PENDING = (select(Assignment.id, Assignment.position, *ITEM_COLUMNS)
            .join(Item, Item.id == Assignment.item_id)
            .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
            .where(*_MINE, Judgement.id.is_(None))
            .order_by(Assignment.position).limit(bindparam("n")))
_MY_COUNTS = (select(func.count(Assignment.id), func.count(Assignment.id).filter(Item.is_gold),
                     func.max(Assignment.position))
              .join(Item, Item.id == Assignment.item_id).where(*_MINE))
_NOT_MINE = Item.id.not_in(select(Assignment.item_id).where(*_MINE))
# Items still wanted by others, locked while this transaction claims them; PostgreSQL skips
# rows another request has locked (FOR UPDATE SKIP LOCKED), so concurrent requests claim
# different items instead of queueing on the same ones and finding them full. SQLite ignores
# the clause: its writers are serialised anyway.
_WANTED = (Item.project_id == bindparam("project"), Item.is_gold.is_(False),
           Item.n_assigned < bindparam("overlap"), _NOT_MINE)
_REGULAR = (select(Item.id).where(*_WANTED)
            .order_by(Item.n_assigned.desc(), Item.position).limit(bindparam("n"))
            .with_for_update(skip_locked=True))
_AVAILABLE = select(func.count(Item.id)).where(*_WANTED)
_GOLD = (select(Item.id)
         .where(Item.project_id == bindparam("project"), Item.is_gold.is_(True), _NOT_MINE)
         .order_by(Item.position).limit(bindparam("n")))
_FRESH = (select(Assignment.id, Assignment.position, *ITEM_COLUMNS)
          .join(Item, Item.id == Assignment.item_id)
          .where(Assignment.annotator_id == bindparam("annotator"),
                 Assignment.item_id.in_(bindparam("ids", expanding=True)))
          .order_by(Assignment.position))


def _fresh(row) -> dict:
    """An unlabelled assignment from a row of (Assignment.id, position, *ITEM_COLUMNS)."""
    return {"id": row.id, "position": row.position, "item_id": row.item_id, "prompt": row.prompt,
            "context": row.context, "responses": row.responses, "judgement": None}


FILL_DEADLINE_S = 3.0  # how long one /next keeps topping up while others hold the items


def next_assignments(store: Store, user: User, project_id: int, n: int) -> tuple[list[dict], bool]:
    """The annotator's first `n` unlabelled assignments, topping the queue up with new items:
    items closest to k judgements first (so overlap, and agreement, appear early), and a gold
    item whenever the annotator's gold share falls below the project's gold rate.

    Returns (assignments, waiting). The batch is filled until it is full or no item is left
    for this annotator: items that concurrent requests hold locked are waited for and taken on
    the next round if they are still wanted. `waiting` is true only if the batch is empty
    while work remains (the deadline passed): the page then asks again instead of saying
    "done"."""
    deadline = time.monotonic() + FILL_DEADLINE_S
    rounds = 0
    while True:
        out, available = _next_with_retries(store, user, project_id, n)
        rounds += 1
        if len(out) >= n or available == 0:
            return out, False
        if time.monotonic() > deadline:
            return out, not out
        # others hold the remaining items locked: their transactions end within milliseconds
        time.sleep(min(0.2, 0.005 * 2 ** rounds) * (0.5 + random.random()))


def _next_with_retries(store: Store, user: User, project_id: int, n: int):
    for attempt in range(3):
        try:
            return retry_conflicts(lambda: _next_once(store, user, project_id, n))
        except IntegrityError:
            # PostgreSQL: the same annotator asked twice at once (two tabs) and both picked
            # the same items; the loser rolled back (counters included) and asks again.
            if attempt == 2:
                raise APIError(409, "your queue is being filled by another request: retry")
    raise AssertionError("unreachable")


def _next_once(store: Store, user: User, project_id: int, n: int) -> tuple[list[dict], int]:
    """One transaction: (the first n unlabelled assignments, items still available to this
    annotator if the batch is short -- 0 when it is full)."""
    with store.write_conn() as c:
        p = c.execute(_PROJECT, {"project": project_id}).first()
        if p is None:
            raise APIError(404, f"no project {project_id}")
        if p.status != "open":
            raise APIError(409, f"project {project_id} is closed")
        check_member(c, p.id, p.members_only, user)
        mine = {"annotator": user.id, "project": p.id}
        out = [_fresh(r) for r in c.execute(_PENDING, {**mine, "n": n})]
        need = n - len(out)
        if need <= 0:
            return out, 0
        n_mine, n_gold_mine, last = c.execute(_MY_COUNTS, mine).one()
        regular = list(c.scalars(_REGULAR, {**mine, "overlap": p.overlap, "n": need}))
        gold = list(c.scalars(_GOLD, {**mine, "n": need})) if p.gold_rate > 0 else []
        slots: list[tuple[bool, int]] = []  # (is_gold, item id) in queue order
        for _ in range(need):
            if gold and n_gold_mine + 1 <= p.gold_rate * (n_mine + 1):
                slots.append((True, gold.pop(0)))
                n_gold_mine += 1
            elif regular:
                slots.append((False, regular.pop(0)))
            else:
                break  # no real work left: gold items alone would measure nothing useful
            n_mine += 1
        wanted = [i for g, i in slots if not g]
        # conditional as well: belt and braces on top of the row locks
        taken = set(c.scalars(update(Item).where(Item.id.in_(wanted), Item.n_assigned < p.overlap)
                              .values(n_assigned=Item.n_assigned + 1)
                              .returning(Item.id))) if wanted else set()
        golds = sorted(i for g, i in slots if g)  # one lock order for every request
        if golds:
            c.execute(update(Item).where(Item.id.in_(golds))
                      .values(n_assigned=Item.n_assigned + 1))
        ids = [i for g, i in slots if g or i in taken]
        if ids:
            position = (last or 0) + 1
            now = utcnow()
            c.execute(insert(Assignment), [
                {"project_id": p.id, "annotator_id": user.id, "item_id": i,
                 "position": position + k, "created": now} for k, i in enumerate(ids)])
            out += [_fresh(r) for r in c.execute(_FRESH, {"annotator": user.id, "ids": ids})]
        if len(out) >= n:
            return out, 0
        # short: are items left that locks hid from us (taken by others) or that we just took?
        return out, c.scalar(_AVAILABLE, {**mine, "overlap": p.overlap})


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
    def attempt():
        try:
            return _submit_once(store, user, assignment_id, body, replace, careful=False)
        except (IntegrityError, sqlite3.IntegrityError):
            # The key was used before (a concurrent retry that won the race, or a client bug
            # that reused it on another assignment): look again with every check.
            return _submit_once(store, user, assignment_id, body, replace, careful=True)
    return retry_conflicts(attempt)


_SUBMIT_ROW = (
    select(Assignment.annotator_id, Assignment.project_id, Assignment.item_id.label("pk"),
           Item.item_id, Item.responses, Project.task_type, Project.scale, Project.aspects,
           Project.status, Project.members_only, ProjectMember.annotator_id.label("member"),
           Judgement.id.label("jid"), Judgement.key, Judgement.choice, Judgement.tie,
           Judgement.strength, Judgement.ratings, Judgement.ranking, Judgement.ties,
           Judgement.text, Judgement.created)
    .join(Item, Item.id == Assignment.item_id)
    .join(Project, Project.id == Assignment.project_id)
    .outerjoin(ProjectMember, and_(ProjectMember.project_id == Assignment.project_id,
                                   ProjectMember.annotator_id == Assignment.annotator_id))
    .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
    .where(Assignment.id == bindparam("assignment")))
_KEY_USED = select(Judgement.assignment_id).where(Judgement.annotator_id == bindparam("annotator"),
                                                  Judgement.key == bindparam("key"))
# What a submission sets; the statements name every column, so they can be prebuilt.
_VALUES = ("key", "choice", "tie", "strength", "ratings", "ranking", "ties", "text",
           "duration_ms", "created")
_INSERT_JUDGEMENT = insert(Judgement).values(
    {c: bindparam("v_" + c) for c in ("project_id", "assignment_id", "annotator_id", "item_id",
                                      *_VALUES)})
_UPDATE_JUDGEMENT = update(Judgement).where(Judgement.id == bindparam("jid")).values(
    {c: bindparam("v_" + c) for c in _VALUES})


def _submit_once(store: Store, user: User, assignment_id: int, body: JudgementIn,
                 replace: bool, careful: bool) -> tuple[dict, bool]:
    """One select, one insert, one transaction: the unique constraints catch what the select
    cannot see."""
    with store.hot(write=True) as run:
        rows = run(_SUBMIT_ROW, {"assignment": assignment_id})
        if not rows:
            raise APIError(404, f"no assignment {assignment_id}")
        row = rows[0]
        if row.annotator_id != user.id:
            raise APIError(403, f"assignment {assignment_id} belongs to another annotator")
        tasks.check(row.task_type, body, row.scale, row.aspects, row.responses)
        answer = {"id": record_id(row.item_id, user.pid), "assignment": assignment_id}
        if row.jid is not None and row.key == body.key:
            return {**answer, "duplicate": True, "judgement": judgement_json(row)}, False
        check_writable(user, row.project_id, row.status, row.members_only,
                       row.member is not None)
        if careful:
            used = run(_KEY_USED, {"annotator": user.id, "key": body.key})
            if used and used[0].assignment_id != assignment_id:
                raise APIError(409, f"key {body.key!r} was already used for another assignment")
        values = {"key": body.key, **tasks.stored(row.task_type, body),
                  "duration_ms": body.duration_ms, "created": utcnow()}
        given = {"v_" + k: v for k, v in values.items()}
        if row.jid is not None:
            if not replace:
                raise APIError(409, f"assignment {assignment_id} is already labelled: PUT to "
                                    "change it, DELETE to undo")
            run(_UPDATE_JUDGEMENT, {**given, "jid": row.jid})
        else:
            run(_INSERT_JUDGEMENT, {**given, "v_project_id": row.project_id,
                                    "v_assignment_id": assignment_id,
                                    "v_annotator_id": user.id, "v_item_id": row.pk})
        return {**answer, "duplicate": False,
                "judgement": judgement_json(SimpleNamespace(**values))}, True


def undo(store: Store, user: User, assignment_id: int) -> dict:
    with store.write() as s:
        row = _own_assignment(s, user, assignment_id)
        p = row.Project
        check_writable(user, p.id, p.status, p.members_only,
                       is_member(s, p.id, user.id) if p.members_only else True)
        n = s.execute(delete(Judgement).where(Judgement.assignment_id == assignment_id)).rowcount
        if not n:
            raise APIError(404, f"assignment {assignment_id} has no judgement to undo")
        return {"assignment": assignment_id, "undone": True, "item_id": row.Item.item_id}


_PROGRESS = (select(func.count(Judgement.id), func.count(Assignment.id))
             .select_from(Assignment)
             .outerjoin(Judgement, Judgement.assignment_id == Assignment.id).where(*_MINE))
_OPEN_SLOTS = (select(func.coalesce(func.sum(bindparam("overlap", type_=Integer)
                                             - Item.n_assigned), 0))
               .where(Item.project_id == bindparam("project"), Item.is_gold.is_(False),
                      Item.n_assigned < bindparam("overlap", type_=Integer)))


def progress(store: Store, user: User, project_id: int) -> dict:
    with store.hot() as run:
        found = run(_PROJECT, {"project": project_id})
        if not found:
            raise APIError(404, f"no project {project_id}")
        p = found[0]
        ((done, assigned),) = run(_PROGRESS, {"annotator": user.id, "project": p.id})
        ((open_slots,),) = run(_OPEN_SLOTS, {"project": p.id, "overlap": p.overlap})
        return {"done": done, "assigned": assigned, "pending": assigned - done,
                "open_slots": int(open_slots or 0)}
