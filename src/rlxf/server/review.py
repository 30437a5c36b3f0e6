"""Admin API and page of the curator's tools (server/curation.py): agreement on a chosen
subset, one item's judgements, the review queue and decisions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from ..store import Project
from .admin import Admin
from .api import Id, store_of
from .curation import DecisionIn, agreement, decide, item_view, review_queue
from .errors import APIError
from .pages import _admin_or_login, page
from .security import User

router = APIRouter(prefix="/api/admin/projects/{project_id}")
pages = APIRouter(include_in_schema=False)
MAX_CHOSEN = 1000


def _chosen(text: str | None, what: str) -> list[str] | None:
    """A comma-separated choice of ids (None: all)."""
    if text is None or not text.strip():
        return None
    out = [x.strip() for x in text.split(",") if x.strip()]
    if len(out) > MAX_CHOSEN:
        raise APIError(422, f"choose at most {MAX_CHOSEN} {what}, got {len(out)}")
    return out


@router.get("/agreement")
def project_agreement(project_id: Id, _admin: Admin, request: Request,
                      annotators: str | None = Query(None, max_length=50_000,
                                                     description="pids, comma-separated"),
                      items: str | None = Query(None, max_length=200_000,
                                                description="item ids, comma-separated")
                      ) -> dict:
    """Raw agreement, Krippendorff's alpha and Gwet's AC1 on these annotators and items."""
    with store_of(request).read() as s:
        return agreement(s, project_id, _chosen(annotators, "annotators"),
                         _chosen(items, "items"))


@router.get("/item")
def project_item(project_id: Id, _admin: Admin, request: Request,
                 id: str = Query(min_length=1, max_length=200, description="the item_id")
                 ) -> dict:
    with store_of(request).read() as s:
        return item_view(s, project_id, id)


@router.get("/review")
def project_review(project_id: Id, _admin: Admin, request: Request,
                   status: Literal["open", "decided", "all"] = "open") -> dict:
    with store_of(request).read() as s:
        return review_queue(s, project_id, status)


@router.post("/decisions", status_code=201)
def project_decision(project_id: Id, body: DecisionIn, admin: Admin, request: Request) -> dict:
    with store_of(request).write() as s:
        return decide(s, project_id, admin, body)


@pages.get("/admin/projects/{project_id}/review")
def review_page(request: Request, project_id: Id):
    user = _admin_or_login(request)
    if not isinstance(user, User):
        return user
    with store_of(request).read() as s:
        p = s.get(Project, project_id)
        if p is None:
            raise APIError(404, f"no project {project_id}")
        project_name, task, scale, aspects = p.name, p.task_type, p.scale, p.aspects
    return page(request, "review.html", user, title=f"Review · {project_name}",
                project_id=project_id, project_name=project_name, task=task, scale=scale,
                aspects=aspects)
