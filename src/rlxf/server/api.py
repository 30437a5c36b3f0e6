"""The JSON API for signing in and for annotators' own work and data.

An annotator reaches only their own assignments (403 otherwise) and their own data, which
they can read in full and erase (GDPR-minded: access and erasure)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update

from ..store import (Annotator, Assignment, AuthSession, Demographics, Item, Judgement, Project,
                     Store, as_utc, iso)
from . import queue
from .errors import APIError
from .membership import check_member, visible_to
from .projects import project_summary
from .signin import client_address
from .security import (SESSION_COOKIE, User, authenticate, check_same_origin, cookie_args,
                       end_all_sessions, end_session, hash_password, start_session, token_hash,
                       utcnow, verify_password)

Id = Annotated[int, Path(ge=1, le=2**31 - 1, description="numeric id")]
router = APIRouter(prefix="/api")
# The two routes every label goes through, matched before all others: routes are tried in
# order, and matching ~20 earlier ones cost a tenth of a submission's CPU (cProfile).
hot = APIRouter(prefix="/api")


def store_of(request: Request) -> Store:
    return request.app.state.store


async def on_db(request: Request, fn, *args):
    """Run store work for a hot route. On SQLite, inline on the event loop: writers queue on
    one lock in this process anyway, and a hop to the thread pool costs more than the query
    (measured with bench/annotate_load.py). On PostgreSQL, in the thread pool, so that network
    round trips overlap."""
    if store_of(request).is_sqlite:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


async def current_user(request: Request) -> User:
    return await on_db(request, authenticate, request, store_of(request))


Me = Annotated[User, Depends(current_user)]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pid: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    password: str = Field(min_length=1, max_length=1000)


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    password: str | None = Field(None, min_length=8, max_length=1000)


class DemographicsIn(BaseModel):
    """Optional and free-form, e.g. {"age_band": "25-34", "first_language": "en"}."""
    model_config = ConfigDict(extra="forbid")
    data: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")],
               Annotated[str, Field(max_length=100, pattern=r"^[^\x00]*$")]] = Field(max_length=10)


def _signed_in(request: Request, response: Response, annotator: Annotator, token: str,
               csrf: str) -> dict:
    response.set_cookie(SESSION_COOKIE, token, max_age=14 * 86400,
                        **cookie_args(request, request.app.state.secure_cookies))
    return {"pid": annotator.pid, "role": annotator.role, "token": token, "csrf": csrf}


def _find_by_pid(store: Store, pid: str) -> Annotator | None:
    with store.read() as s:
        return s.scalar(select(Annotator).where(Annotator.pid == pid,
                                                Annotator.disabled.is_(False)))


def _new_session(store: Store, annotator_id: int) -> tuple[str, str]:
    with store.write() as s:
        return start_session(s, annotator_id)


@router.post("/login")
async def login(body: LoginIn, request: Request, response: Response) -> dict:
    """Async so that attempts waiting for a hashing slot hold no thread (server/signin.py)."""
    check_same_origin(request)
    store, guard = store_of(request), request.app.state.signin
    await guard.admit(client_address(request), body.pid)
    a = await run_in_threadpool(_find_by_pid, store, body.pid)
    if not await guard.hash(verify_password, a.password_hash if a else None, body.password):
        raise APIError(401, "wrong annotator id or password")
    token, csrf = await run_in_threadpool(_new_session, store, a.id)
    return _signed_in(request, response, a, token, csrf)


def _invited(store: Store, token: str) -> Annotator:
    """The account a usable invite token belongs to (404 / 410 otherwise)."""
    with store.read() as s:
        a = s.scalar(select(Annotator).where(Annotator.invite_hash == token_hash(token)))
    if a is None or a.disabled:
        raise APIError(404, "this invite link is unknown or was already used: ask your admin "
                            "for a new one")
    if as_utc(a.invite_expires) < utcnow():
        raise APIError(410, "this invite link has expired: ask your admin for a new one")
    return a


def _use_invite(store: Store, token: str, password_hash: str | None) -> tuple:
    """Void the invite and sign in, if it is still unused (a concurrent use may have won).
    A new password is a reset: every earlier session of the account ends."""
    with store.write() as s:
        a = s.scalar(select(Annotator).where(Annotator.invite_hash == token_hash(token),
                                             Annotator.disabled.is_(False)))
        if a is None:
            raise APIError(404, "this invite link was already used: ask your admin for a new one")
        a.invite_hash, a.invite_expires = None, None
        if password_hash:
            a.password_hash = password_hash
            end_all_sessions(s, a.id)
        return a, *start_session(s, a.id)


@router.post("/invites/accept")
async def accept_invite(body: AcceptIn, request: Request, response: Response) -> dict:
    """Use a one-time invite: it signs the person in and is then void. With a password they
    can log in again later; without one, only this browser's session (or a new invite) works.
    The token is checked before the password is hashed, so a wrong token costs no argon2."""
    check_same_origin(request)
    store, guard = store_of(request), request.app.state.signin
    await guard.admit(client_address(request), None)
    a = await run_in_threadpool(_invited, store, body.token)
    await guard.admit(None, a.pid)
    password_hash = await guard.hash(hash_password, body.password) if body.password else None
    a, token, csrf = await run_in_threadpool(_use_invite, store, body.token, password_hash)
    return _signed_in(request, response, a, token, csrf)


@router.post("/logout")
def logout(user: Me, request: Request, response: Response) -> dict:
    with store_of(request).write() as s:
        end_session(s, user.token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


@router.post("/logout/everywhere")
def logout_everywhere(user: Me, request: Request, response: Response) -> dict:
    """Sign out every session of this account (other browsers, lost devices, scripts)."""
    with store_of(request).write() as s:
        n = end_all_sessions(s, user.id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True, "sessions_ended": n}


@router.get("/me")
def me(user: Me, request: Request) -> dict:
    with store_of(request).read() as s:
        a = s.get(Annotator, user.id)
        has_demo = s.get(Demographics, user.id) is not None
        return {"pid": a.pid, "role": a.role, "group": a.group,
                "has_password": a.password_hash is not None, "has_demographics": has_demo}


@router.get("/me/data")
def my_data(user: Me, request: Request) -> dict:
    """Everything stored about the signed-in person (right of access)."""
    with store_of(request).read() as s:
        a = s.get(Annotator, user.id)
        demo = s.get(Demographics, user.id)
        rows = s.execute(select(Judgement, Item, Project).join(Item, Item.id == Judgement.item_id)
                         .join(Project, Project.id == Judgement.project_id)
                         .where(Judgement.annotator_id == user.id)
                         .order_by(Judgement.id)).all()
        n_sessions = s.scalar(select(func.count(AuthSession.id))
                              .where(AuthSession.annotator_id == user.id))
        n_assigned = s.scalar(select(func.count(Assignment.id))
                              .where(Assignment.annotator_id == user.id))
        return {
            "account": {"pid": a.pid, "role": a.role, "group": a.group,
                        "created": iso(a.created), "has_password": bool(a.password_hash),
                        "active_sessions": n_sessions,
                        "assignments": n_assigned},
            "demographics": demo.data if demo else None,
            "judgements": [{"project": p.name, "item_id": it.item_id,
                            **queue.judgement_json(j), "duration_ms": j.duration_ms}
                           for j, it, p in rows],
        }


@router.put("/me/demographics")
def set_demographics(body: DemographicsIn, user: Me, request: Request) -> dict:
    with store_of(request).write() as s:
        row = s.get(Demographics, user.id)
        if row is None:
            s.add(Demographics(annotator_id=user.id, data=body.data))
        else:
            row.data, row.updated = body.data, utcnow()
    return {"demographics": body.data}


@router.delete("/me/demographics")
def delete_demographics(user: Me, request: Request) -> dict:
    with store_of(request).write() as s:
        s.execute(delete(Demographics).where(Demographics.annotator_id == user.id))
    return {"demographics": None}


@router.delete("/me")
def erase_me(user: Me, request: Request, response: Response) -> dict:
    """Right to erasure: judgements, assignments, demographics, sessions and the account go.
    Items handed to this person are handed out again."""
    if user.is_admin:
        raise APIError(409, "an admin account cannot erase itself here: use another admin")
    with store_of(request).write() as s:
        n = s.scalar(select(func.count(Judgement.id)).where(Judgement.annotator_id == user.id))
        items = list(s.scalars(select(Assignment.item_id)
                               .where(Assignment.annotator_id == user.id)))
        if items:
            s.execute(update(Item).where(Item.id.in_(items))
                      .values(n_assigned=Item.n_assigned - 1))
        s.execute(delete(Annotator).where(Annotator.id == user.id))  # cascades to the rest
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"erased": True, "judgements_deleted": n}


@router.get("/projects")
def projects(user: Me, request: Request) -> list[dict]:
    store = store_of(request)
    with store.read() as s:
        open_projects = list(s.scalars(select(Project).where(Project.status == "open")
                                       .order_by(Project.id)))
        allowed = visible_to(user, [p.id for p in open_projects],
                             {p.id: p.members_only for p in open_projects}, s)
        summaries = [project_summary(s, p, for_admin=False) for p in open_projects
                     if p.id in allowed]
    for p in summaries:
        p["mine"] = queue.progress(store, user, p["id"])
    return summaries


@router.get("/projects/{project_id}")
def project(project_id: Id, user: Me, request: Request) -> dict:
    store = store_of(request)
    with store.read() as s:
        p = s.get(Project, project_id)
        if p is None or (p.status != "open" and not user.is_admin):
            raise APIError(404, f"no open project {project_id}")
        check_member(s, p.id, p.members_only, user)
        out = project_summary(s, p, for_admin=False)
    out["mine"] = queue.progress(store, user, project_id)
    return out


@hot.post("/projects/{project_id}/next")
async def next_items(project_id: Id, user: Me, request: Request,
                     n: Annotated[int, Query(ge=1, le=100)] = 10) -> dict:
    """Up to n unlabelled assignments for the signed-in annotator (new ones are handed out).
    An empty list means no work is left for them, unless `waiting` is true: then others held
    the remaining items for longer than the server waited, and the page asks again."""
    store = store_of(request)
    items, waiting = await on_db(request, queue.next_assignments, store, user, project_id, n)
    return {"assignments": items, "waiting": waiting,
            "mine": await on_db(request, queue.progress, store, user, project_id)}


@router.get("/projects/{project_id}/assignments")
def list_assignments(project_id: Id, user: Me, request: Request,
                     done: bool | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> dict:
    return {"assignments": queue.my_assignments(store_of(request), user, project_id, done,
                                                limit, before)}


@router.get("/assignments/{assignment_id}")
def assignment(assignment_id: Id, user: Me, request: Request) -> dict:
    return queue.get_assignment(store_of(request), user, assignment_id)


@hot.post("/assignments/{assignment_id}/judgement", status_code=201)
async def submit(assignment_id: Id, body: queue.JudgementIn, user: Me, request: Request,
                 response: Response) -> dict:
    """Label an assignment. Retrying with the same key returns 200 and the stored label."""
    request.app.state.submit_limit.check(user.id)
    out, created = await on_db(request, queue.submit, store_of(request), user, assignment_id,
                               body)
    if not created:
        response.status_code = 200
    return out


@router.put("/assignments/{assignment_id}/judgement")
def replace(assignment_id: Id, body: queue.JudgementIn, user: Me, request: Request) -> dict:
    """Change the label of an assignment (or set it)."""
    request.app.state.submit_limit.check(user.id)
    return queue.submit(store_of(request), user, assignment_id, body, replace=True)[0]


@router.delete("/assignments/{assignment_id}/judgement")
def undo(assignment_id: Id, user: Me, request: Request) -> dict:
    return queue.undo(store_of(request), user, assignment_id)

