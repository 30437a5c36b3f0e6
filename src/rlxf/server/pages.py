"""HTML pages. They only read; every change goes through the JSON API from the page's script,
with the session's CSRF token in a header."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from ..store import Annotator, Project
from .api import Id
from .errors import APIError
from .markdown import render as render_markdown
from .membership import check_member
from .projects import project_summary
from .security import SESSION_COOKIE, User, lookup_user, token_hash

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
router = APIRouter(include_in_schema=False)
STRENGTH_NAMES = {2: ["slightly", "much better"], 3: ["slightly", "clearly", "much better"]}
STRENGTH_KEYS = "asdfghjkl"


def page_user(request: Request) -> User | None:
    token = request.cookies.get(SESSION_COOKIE)
    return lookup_user(request.app.state.store, token, "cookie") if token else None


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def page(request: Request, name: str, user: User | None, **context):
    return templates.TemplateResponse(request, name, {"user": user, "csrf": user.csrf if user
                                                      else "", **context})


@router.get("/")
def home(request: Request):
    user = page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/admin" if user.is_admin else "/projects", status_code=303)


def same_origin_path(next: str) -> str:
    """`next` if it is a path on this site, else "/" (no open redirect). Browsers read a
    backslash as a slash and drop tabs and newlines, so "/\\evil.example" and "/\t/evil.example"
    mean //evil.example: anything but a plain path that starts with one slash is refused."""
    plain = all(c.isprintable() and not c.isspace() and c != "\\" for c in next)
    if not plain or not next.startswith("/") or next.startswith("//"):
        return "/"
    return next


@router.get("/login")
def login_page(request: Request, next: str = "/"):
    next = same_origin_path(next)
    return page(request, "login.html", page_user(request), title="Sign in", next=next)


@router.get("/invite/{token}")
def invite_page(request: Request, token: str):
    with request.app.state.store.read() as s:
        a = s.scalar(select(Annotator).where(Annotator.invite_hash == token_hash(token[:100])))
        pid, role = (a.pid, a.role) if a is not None and not a.disabled else (None, None)
    return page(request, "invite.html", None, title="Welcome", token=token[:100], pid=pid,
                role=role)


@router.get("/projects")
def projects_page(request: Request):
    user = page_user(request)
    if user is None:
        return to_login(request)
    return page(request, "projects.html", user, title="Projects")


@router.get("/annotate/{project_id}")
def annotate_page(request: Request, project_id: Id):
    user = page_user(request)
    if user is None:
        return to_login(request)
    with request.app.state.store.read() as s:
        p = s.get(Project, project_id)
        if p is None or p.status != "open":
            raise APIError(404, f"no open project {project_id}")
        check_member(s, p.id, p.members_only, user)
        summary = project_summary(s, p, for_admin=False)
    scale = summary["scale"]
    names = STRENGTH_NAMES.get(scale, [f"level {i}" for i in range(1, scale + 1)])
    strengths = [{"value": i + 1, "key": STRENGTH_KEYS[i], "name": n} for i, n in enumerate(names)]
    return page(request, "annotate.html", user, title=p.name, p=summary,
                guidelines_html=render_markdown(p.guidelines), strengths=strengths,
                default_strength=(scale + 1) // 2)


@router.get("/me")
def me_page(request: Request):
    user = page_user(request)
    if user is None:
        return to_login(request)
    return page(request, "me.html", user, title="My data")


def _admin_or_login(request: Request) -> User | RedirectResponse:
    user = page_user(request)
    if user is None:
        return to_login(request)
    if not user.is_admin:
        raise APIError(403, "this page needs the admin role")
    return user


@router.get("/admin")
def admin_page(request: Request):
    user = _admin_or_login(request)
    if not isinstance(user, User):
        return user
    data_dir = request.app.state.data_dir
    return page(request, "admin.html", user, title="Admin",
                data_dir=str(data_dir) if data_dir else None)


@router.get("/admin/projects/{project_id}")
def admin_project_page(request: Request, project_id: Id):
    user = _admin_or_login(request)
    if not isinstance(user, User):
        return user
    with request.app.state.store.read() as s:
        p = s.get(Project, project_id)
        if p is None:
            raise APIError(404, f"no project {project_id}")
        summary = project_summary(s, p)
    return page(request, "admin_project.html", user, title=p.name, p=summary,
                guidelines_html=render_markdown(p.guidelines))
