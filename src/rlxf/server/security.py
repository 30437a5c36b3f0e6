"""Who is asking: passwords (argon2), one-time invites, sessions, CSRF.

A session token travels either as the HttpOnly, SameSite=Lax cookie the pages use or as
`Authorization: Bearer TOKEN` for scripts; the database keeps only its SHA-256. Requests that
change state with the cookie must carry the session's CSRF token (header X-CSRF-Token or form
field csrf_token); bearer requests need none, since a browser never attaches them on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request
from sqlalchemy import bindparam, delete, select

from ..store import Annotator, AuthSession, Store
from .errors import APIError

SESSION_COOKIE = "rlxf_session"
SESSION_DAYS = 14
INVITE_DAYS = 7
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_hasher = PasswordHasher()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_pid() -> str:
    """A pseudonymous annotator id: random, so it says nothing about the person."""
    return "h-" + secrets.token_hex(4)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        _hasher.hash(password)  # same cost whether or not the account has a password
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def issue_invite(annotator: Annotator) -> str:
    """A fresh one-time invite token for `annotator` (the previous one stops working)."""
    token = new_token()
    annotator.invite_hash = token_hash(token)
    annotator.invite_expires = utcnow() + timedelta(days=INVITE_DAYS)
    return token


def start_session(session, annotator_id: int) -> tuple[str, str]:
    """Create a login; returns (token, csrf)."""
    token, csrf = new_token(), secrets.token_urlsafe(24)
    session.add(AuthSession(token_hash=token_hash(token), annotator_id=annotator_id, csrf=csrf,
                            expires=utcnow() + timedelta(days=SESSION_DAYS)))
    return token, csrf


def end_session(session, token: str) -> None:
    session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))


def end_all_sessions(session, annotator_id: int) -> int:
    """Sign an account out everywhere (a password reset, "sign out everywhere")."""
    return session.execute(delete(AuthSession)
                           .where(AuthSession.annotator_id == annotator_id)).rowcount


@dataclass(frozen=True)
class User:
    id: int
    pid: str
    role: str
    csrf: str
    via: str  # "cookie" | "bearer"
    token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def request_token(request: Request) -> tuple[str | None, str]:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise APIError(401, "Authorization header must be 'Bearer TOKEN'")
        return value.strip(), "bearer"
    return request.cookies.get(SESSION_COOKIE), "cookie"


# Built once: constructing a statement per request cost more than running it (py-spy).
_USER_BY_TOKEN = (
    select(Annotator.id, Annotator.pid, Annotator.role, AuthSession.csrf)
    .join(AuthSession, AuthSession.annotator_id == Annotator.id)
    .where(AuthSession.token_hash == bindparam("token_hash"),
           AuthSession.expires > bindparam("now"), Annotator.disabled.is_(False)))


def lookup_user(store: Store, token: str, via: str) -> User | None:
    with store.hot() as run:
        rows = run(_USER_BY_TOKEN, {"token_hash": token_hash(token), "now": utcnow()})
    return User(rows[0].id, rows[0].pid, rows[0].role, rows[0].csrf, via, token) if rows else None


def authenticate(request: Request, store: Store, form_csrf: str | None = None) -> User:
    """The signed-in user, or 401; cookie requests that change state also need the CSRF token."""
    token, via = request_token(request)
    if not token:
        raise APIError(401, "not signed in: log in at /login, or send Authorization: Bearer TOKEN")
    user = lookup_user(store, token, via)
    if user is None:
        raise APIError(401, "session unknown or expired: log in again")
    if via == "cookie" and request.method in UNSAFE:
        sent = request.headers.get("x-csrf-token") or form_csrf or ""
        if not hmac.compare_digest(sent.encode(), user.csrf.encode()):
            raise APIError(403, "CSRF token missing or wrong: reload the page and try again")
    return user


def require_admin(user: User) -> User:
    if not user.is_admin:
        raise APIError(403, "this needs the admin role")
    return user


def check_same_origin(request: Request) -> None:
    """Login and invite acceptance have no session yet, hence no CSRF token: refuse them when
    the browser says the request comes from another site (scripts send no Origin). They also
    take JSON only, which a cross-site form cannot send without a CORS preflight."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if request.headers.get("sec-fetch-site") == "cross-site" or (
            origin and origin.split("://", 1)[-1] != host):
        raise APIError(403, "cross-site login refused (CSRF protection)")


def cookie_args(request: Request, secure: bool | None) -> dict:
    is_https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    return {"httponly": True, "samesite": "lax", "path": "/",
            "secure": is_https if secure is None else secure}
