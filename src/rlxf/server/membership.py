"""Who works on a project, and taking unfinished work back.

A members-only project hands work only to its members (admins may always label). Work an
annotator holds but has not labelled goes back to the pool when the admin removes them from the
project, disables their account, or releases the work of annotators idle for a while: the
items' counters drop, so other annotators get them and the overlap k is still reached. Labels
already given stay.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update

from ..store import Annotator, Assignment, Item, Judgement, ProjectMember
from .errors import APIError
from .security import User

_MEMBER = select(ProjectMember.annotator_id).where(
    ProjectMember.project_id == bindparam("project"),
    ProjectMember.annotator_id == bindparam("annotator"))


def is_member(conn, project_id: int, annotator_id: int) -> bool:
    return conn.execute(_MEMBER, {"project": project_id,
                                  "annotator": annotator_id}).first() is not None


def _not_a_member(project_id: int) -> APIError:
    return APIError(403, f"project {project_id} is for its members only: ask your admin to "
                         "add you")


def check_member(conn, project_id: int, members_only: bool, user: User) -> None:
    """403 unless `user` may work on the project (`conn`: a Core connection or a Session)."""
    if members_only and not user.is_admin and not is_member(conn, project_id, user.id):
        raise _not_a_member(project_id)


def check_writable(user: User, project_id: int, status: str, members_only: bool,
                   member: bool) -> None:
    """Labels may be given, changed or undone only in an open project (409) and, in a
    members-only one, only by its members (403; admins always)."""
    if status != "open":
        raise APIError(409, f"project {project_id} is closed: its labels can no longer be "
                            "given, changed or undone")
    if members_only and not member and not user.is_admin:
        raise _not_a_member(project_id)


def visible_to(user: User, project_ids: list[int], members_only: dict[int, bool],
               session) -> set[int]:
    """The projects of `project_ids` the user may see in their list."""
    if user.is_admin:
        return set(project_ids)
    mine = set(session.scalars(select(ProjectMember.project_id)
                               .where(ProjectMember.annotator_id == user.id)))
    return {p for p in project_ids if not members_only[p] or p in mine}


def release(session, project_id: int | None = None,
            annotator_ids: list[int] | None = None) -> int:
    """Delete the unlabelled assignments of these annotators (in one project, or in all) and
    hand their items out again; returns how many were released.

    Safe against a label arriving at the same moment: the candidate rows are locked first
    (FOR UPDATE on PostgreSQL; SQLite writers are serialized anyway), and the delete, a new
    statement, sees every judgement committed before the lock was granted. A label that comes
    later finds its assignment gone (404) instead of being deleted with it."""
    q = select(Assignment.id).where(~select(Judgement.id).where(
        Judgement.assignment_id == Assignment.id).exists())
    if project_id is not None:
        q = q.where(Assignment.project_id == project_id)
    if annotator_ids is not None:
        if not annotator_ids:
            return 0
        q = q.where(Assignment.annotator_id.in_(annotator_ids))
    candidates = list(session.scalars(q.with_for_update()))
    if not candidates:
        return 0
    released = list(session.execute(
        delete(Assignment).where(Assignment.id.in_(candidates), ~select(Judgement.id).where(
            Judgement.assignment_id == Assignment.id).exists())
        .returning(Assignment.item_id)).scalars())
    by_count: dict[int, list[int]] = {}
    for item, n in Counter(released).items():
        by_count.setdefault(n, []).append(item)
    for n, items in by_count.items():
        session.execute(update(Item).where(Item.id.in_(items))
                        .values(n_assigned=Item.n_assigned - n))
    return len(released)


def idle_annotators(session, project_id: int, since: datetime) -> list[Annotator]:
    """Annotators holding unlabelled work in the project who have neither labelled nor been
    handed anything there since `since`."""
    last_label = (select(Judgement.annotator_id, func.max(Judgement.created).label("t"))
                  .where(Judgement.project_id == project_id)
                  .group_by(Judgement.annotator_id).subquery())
    holders = (select(Assignment.annotator_id, func.max(Assignment.created).label("t"))
               .where(Assignment.project_id == project_id, ~select(Judgement.id).where(
                   Judgement.assignment_id == Assignment.id).exists())
               .group_by(Assignment.annotator_id).subquery())
    last_given = (select(Assignment.annotator_id, func.max(Assignment.created).label("t"))
                  .where(Assignment.project_id == project_id)
                  .group_by(Assignment.annotator_id).subquery())
    q = (select(Annotator).join(holders, holders.c.annotator_id == Annotator.id)
         .join(last_given, last_given.c.annotator_id == Annotator.id)
         .outerjoin(last_label, last_label.c.annotator_id == Annotator.id)
         .where(last_given.c.t < since,
                (last_label.c.t.is_(None)) | (last_label.c.t < since))
         .order_by(Annotator.id))
    return list(session.scalars(q))
