"""Admin API: projects (from a run directory or a JSONL upload), invites, live statistics,
export. Every route needs the admin role (403 otherwise)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select

from ..feedback.record import RecordError
from ..store import Annotator, Judgement, Project, ProjectMember, iso
from .api import Id, current_user, store_of
from .errors import APIError
from .export import export_records
from .importer import Source, build_items, mark_gold, read_source, records_from_text, resolve_under
from .membership import idle_annotators, release
from .projects import (GUIDELINES, NO_NUL, ProjectSettings, ProjectUpdate, create_project,
                       project_summary)
from .security import User, issue_invite, new_pid, require_admin, utcnow
from .stats import project_stats


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    return require_admin(user)


Admin = Annotated[User, Depends(admin_user)]
Pid = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="pseudonymous id")]
router = APIRouter(prefix="/api/admin")


class NewProject(ProjectSettings):
    """Settings plus the source: `path` (a run directory or JSONL file on the server, inside
    the server's --data-dir) or `jsonl` (the text of a canonical JSONL file)."""
    path: str | None = Field(None, max_length=4096, pattern=NO_NUL.pattern)
    jsonl: str | None = None
    filename: str = Field("upload.jsonl", max_length=200, pattern=NO_NUL.pattern)
    gold_count: int = Field(10, ge=0, le=10_000, description="items to hold out as gold")


class NewAnnotator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=200, pattern=NO_NUL.pattern,
                      description="admin-only reminder of who this is; never exported")
    group: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")
    role: Literal["annotator", "admin"] = "annotator"


class AnnotatorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    note: str | None = Field(None, max_length=200, pattern=NO_NUL.pattern)
    group: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")


def load_source(body: NewProject, data_dir: FsPath | None) -> Source:
    if (body.path is None) == (body.jsonl is None):
        raise APIError(422, 'give the items as "path" (run directory or JSONL file on the '
                            'server) or as "jsonl" (the file\'s text), not both')
    try:
        if body.jsonl is not None:
            return Source(records_from_text(body.jsonl, body.filename),
                          {"upload": body.filename})
        if data_dir is None:
            raise APIError(403, "this server reads no paths (start it with --data-dir DIR); "
                                "upload the JSONL instead")
        return read_source(resolve_under(body.path, data_dir))
    except (RecordError, ValueError, OSError) as e:
        raise APIError(400, str(e)) from None


@router.post("/projects", status_code=201)
def new_project(body: NewProject, _admin: Admin, request: Request) -> dict:
    source = load_source(body, request.app.state.data_dir)
    try:
        items, counts = build_items(source.records, body.task_type)
        gold_from = mark_gold(items, source, body.gold_count if body.task_type == "pairwise" else 0)
    except (ValueError, OSError, KeyError) as e:
        raise APIError(400, f"cannot build items: {e}") from None
    settings = ProjectSettings(**body.model_dump(include=set(ProjectSettings.model_fields)))
    if "guidelines" not in body.model_fields_set:
        settings.guidelines = GUIDELINES[settings.task_type]
    with store_of(request).write() as s:
        p = create_project(s, settings, items, {**source.description, "gold_from": gold_from,
                                                "import": counts})
        s.flush()
        return {**project_summary(s, p), "import": counts}


@router.get("/projects")
def list_projects(_admin: Admin, request: Request) -> list[dict]:
    with store_of(request).read() as s:
        out = []
        for p in s.scalars(select(Project).order_by(Project.id)):
            summary = project_summary(s, p)
            summary["judgements"] = s.scalar(select(func.count(Judgement.id))
                                             .where(Judgement.project_id == p.id))
            out.append(summary)
        return out


def _project(s, project_id: int) -> Project:
    p = s.get(Project, project_id)
    if p is None:
        raise APIError(404, f"no project {project_id}")
    return p


@router.get("/projects/{project_id}")
def get_project(project_id: Id, _admin: Admin, request: Request) -> dict:
    with store_of(request).read() as s:
        return project_summary(s, _project(s, project_id))


@router.patch("/projects/{project_id}")
def update_project(project_id: Id, body: ProjectUpdate, _admin: Admin, request: Request) -> dict:
    with store_of(request).write() as s:
        p = _project(s, project_id)
        for k, v in body.model_dump(exclude_none=True).items():
            setattr(p, k, v)
        s.flush()
        return project_summary(s, p)


@router.get("/projects/{project_id}/stats")
def stats(project_id: Id, _admin: Admin, request: Request) -> dict:
    with store_of(request).read() as s:
        return project_stats(s, _project(s, project_id))


@router.get("/projects/{project_id}/export")
def export(project_id: Id, _admin: Admin, request: Request) -> Response:
    """Canonical feedback JSONL (docs/FEEDBACK.md), one judgement per line."""
    import json
    with store_of(request).read() as s:
        p = _project(s, project_id)
        lines = [json.dumps(r.to_json(), sort_keys=True) for r in export_records(s, p)]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in p.name)[:60] or "project"
    return Response("".join(line + "\n" for line in lines), media_type="application/x-ndjson",
                    headers={"Content-Disposition":
                             f'attachment; filename="{name}-{p.id}.feedback.jsonl"'})


def _annotator_json(a: Annotator) -> dict:
    return {"pid": a.pid, "role": a.role, "group": a.group, "note": a.note,
            "disabled": a.disabled, "has_password": a.password_hash is not None,
            "invite_pending": a.invite_hash is not None,
            "created": iso(a.created)}


def _invite_url(request: Request, token: str) -> str:
    """From the configured public URL (`--public-url`), never from the request's Host header,
    which whoever sends the request chooses; without one, a path on this site."""
    return f"{request.app.state.public_url or ''}/invite/{token}"


@router.post("/annotators", status_code=201)
def invite(body: NewAnnotator, _admin: Admin, request: Request) -> dict:
    """A new pseudonymous annotator and their one-time invite link (shown once)."""
    with store_of(request).write() as s:
        a = Annotator(pid=new_pid(), role=body.role, group=body.group or None, note=body.note)
        token = issue_invite(a)
        s.add(a)
        s.flush()
        return {**_annotator_json(a), "invite_url": _invite_url(request, token),
                "invite_token": token}


@router.get("/annotators")
def annotators(_admin: Admin, request: Request) -> list[dict]:
    with store_of(request).read() as s:
        return [_annotator_json(a) for a in s.scalars(select(Annotator).order_by(Annotator.id))]


def _annotator(s, pid: str) -> Annotator:
    a = s.scalar(select(Annotator).where(Annotator.pid == pid))
    if a is None:
        raise APIError(404, f"no annotator {pid!r}")
    return a


@router.post("/annotators/{pid}/invite")
def reinvite(pid: Pid, _admin: Admin, request: Request) -> dict:
    """A fresh one-time link (the old one stops working), e.g. for a lost password."""
    with store_of(request).write() as s:
        a = _annotator(s, pid)
        token = issue_invite(a)
        return {**_annotator_json(a), "invite_url": _invite_url(request, token),
                "invite_token": token}


@router.patch("/annotators/{pid}")
def update_annotator(pid: Pid, body: AnnotatorUpdate, admin: Admin, request: Request) -> dict:
    """Disabling an account also hands its unlabelled work, in every project, to others."""
    with store_of(request).write() as s:
        a = _annotator(s, pid)
        if a.id == admin.id and body.disabled:
            raise APIError(409, "you cannot disable your own admin account")
        for k, v in body.model_dump(exclude_none=True).items():
            setattr(a, k, v)
        released = release(s, annotator_ids=[a.id]) if body.disabled else 0
        return {**_annotator_json(a), "released": released}


class Release(BaseModel):
    """Whose unlabelled work to take back: one annotator's, or that of everyone idle."""
    model_config = ConfigDict(extra="forbid")
    idle_minutes: int | None = Field(None, ge=1, le=10_000_000,
                                     description="annotators idle for this long")
    pid: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,40}$", description="one annotator")


@router.get("/projects/{project_id}/members")
def members(project_id: Id, _admin: Admin, request: Request) -> dict:
    with store_of(request).read() as s:
        p = _project(s, project_id)
        pids = list(s.scalars(select(Annotator.pid).join(
            ProjectMember, ProjectMember.annotator_id == Annotator.id)
            .where(ProjectMember.project_id == p.id).order_by(Annotator.pid)))
        return {"project": p.id, "members_only": p.members_only, "members": pids}


@router.put("/projects/{project_id}/members/{pid}")
def add_member(project_id: Id, pid: Pid, _admin: Admin, request: Request) -> dict:
    with store_of(request).write() as s:
        p, a = _project(s, project_id), _annotator(s, pid)
        added = s.get(ProjectMember, (p.id, a.id)) is None
        if added:
            s.add(ProjectMember(project_id=p.id, annotator_id=a.id))
        return {"project": p.id, "member": a.pid, "added": added}


@router.delete("/projects/{project_id}/members/{pid}")
def remove_member(project_id: Id, pid: Pid, _admin: Admin, request: Request) -> dict:
    """Remove an annotator from a project: their unlabelled work there goes to others (their
    labels stay). Works on open projects too, as a way to take work back from someone."""
    with store_of(request).write() as s:
        p, a = _project(s, project_id), _annotator(s, pid)
        removed = s.execute(delete(ProjectMember).where(
            ProjectMember.project_id == p.id, ProjectMember.annotator_id == a.id)).rowcount
        return {"project": p.id, "member": a.pid, "removed": bool(removed),
                "released": release(s, p.id, [a.id])}


@router.post("/projects/{project_id}/release")
def release_idle(project_id: Id, body: Release, _admin: Admin, request: Request) -> dict:
    """Hand the unlabelled work of annotators idle for `idle_minutes`, or of annotator `pid`,
    to the others (their labels stay; a member stays a member)."""
    if (body.idle_minutes is None) == (body.pid is None):
        raise APIError(422, 'send "idle_minutes" (annotators idle that long) or "pid" (one '
                            "annotator), not both")
    with store_of(request).write() as s:
        p = _project(s, project_id)
        whom = ([_annotator(s, body.pid)] if body.pid is not None else
                idle_annotators(s, p.id, utcnow() - timedelta(minutes=body.idle_minutes)))
        n = release(s, p.id, [a.id for a in whom])
        return {"project": p.id, "released": n, "annotators": [a.pid for a in whom]}
