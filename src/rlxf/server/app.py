"""The annotation web app: `create_app(db)` wires the store, the JSON API, the pages and the
protections (body limits, security headers, JSON errors)."""

from __future__ import annotations

import gc
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..store import Store
from . import admin, api, pages, review
from .errors import BodyLimit, install_error_handlers
from .ratelimit import RateLimiter
from .signin import ADDRESS_BURST, SignInGuard

HERE = Path(__file__).parent
MAX_BODY = 1 << 20  # 1 MiB: a judgement is a few hundred bytes
MAX_IMPORT = 64 << 20  # a project's JSONL upload
SUBMIT_RATE, SUBMIT_BURST = 5.0, 20  # labels per second per account: far above a reader's pace

# No inline script or style and nothing from another origin: an injected <script> cannot run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),  # invite links must not leak
                    (b"cache-control", b"no-store")]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def add_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS
                            if k not in names and not (static and k == b"cache-control")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)


def serving(store: Store):
    """What a served app does at start and stop (not in-process test clients)."""
    @asynccontextmanager
    async def lifespan(_app):
        store.start_checkpoints()
        # Everything alive now (modules, routes, compiled statements) lives as long as the
        # process: freezing it keeps the full collections the requests' garbage triggers
        # from scanning it again (they took up to 0.3 s each before; bench/annotate_load.py).
        gc.collect()
        gc.freeze()
        yield
        store.stop_checkpoints()
    return lifespan


def create_app(db: str | Store, *, data_dir: str | Path | None = None, migrate: bool = True,
               secure_cookies: bool | None = None, max_body: int = MAX_BODY,
               max_import: int = MAX_IMPORT, serve: bool = False,
               submit_rate: float = SUBMIT_RATE, submit_burst: int = SUBMIT_BURST,
               public_url: str | None = None, signin: SignInGuard | None = None) -> FastAPI:
    """`db`: a SQLite file or a postgresql:// URL (or an open Store). `data_dir`: the one
    directory whose run directories and JSONL files admins may import by path. `serve`: run
    the background work of a served app (WAL checkpoints, a frozen heap) while it runs.
    `submit_rate`, `submit_burst`: each account's label submissions per second and burst
    (server/ratelimit.py; rate 0 turns the limit off). `public_url`: where people reach the
    app (invite links are built from it, not from the Host header). `signin`: limits on
    sign-in attempts and concurrent password hashes (server/signin.py)."""
    store = db if isinstance(db, Store) else Store(db)
    if migrate:
        store.migrate()
    # The interactive docs load scripts from a CDN: off. The schema stays at /api/openapi.json.
    app = FastAPI(title="rlxf annotate", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=serving(store) if serve else None)
    app.state.store = store
    app.state.data_dir = Path(data_dir).resolve() if data_dir else None
    app.state.secure_cookies = secure_cookies
    app.state.submit_limit = RateLimiter(submit_rate, submit_burst)
    app.state.public_url = public_url.rstrip("/") if public_url else None
    app.state.signin = signin or SignInGuard()
    install_error_handlers(app)
    app.include_router(api.hot)
    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(review.router)
    app.include_router(pages.router)
    app.include_router(review.pages)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodyLimit, limit=max_body, large_limit=max_import,
                       large_routes=frozenset({("POST", "/api/admin/projects")}))  # import
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: settings come from the
    environment `rlxf annotate serve` sets (the schema is already migrated by then)."""
    env = os.environ
    secure = env.get("RLXF_ANNOTATE_SECURE_COOKIES")
    return create_app(env["RLXF_ANNOTATE_DB"], data_dir=env.get("RLXF_ANNOTATE_DATA") or None,
                      migrate=False, serve=True,
                      submit_rate=float(env.get("RLXF_ANNOTATE_SUBMIT_RATE", SUBMIT_RATE)),
                      submit_burst=int(env.get("RLXF_ANNOTATE_SUBMIT_BURST", SUBMIT_BURST)),
                      public_url=env.get("RLXF_ANNOTATE_PUBLIC_URL") or None,
                      secure_cookies=None if secure is None else secure == "1",
                      signin=SignInGuard(address_burst=int(env.get(
                          "RLXF_ANNOTATE_ADDRESS_LOGIN_BURST", ADDRESS_BURST))))
