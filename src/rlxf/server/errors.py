"""Every error is JSON with a sentence a person can act on: {"error": "...", ...}.

Validation errors name the field; a body over the limit is refused before it is read; anything
unexpected is logged and answered with a 500 that leaks nothing (the tests hunt for these)."""

from __future__ import annotations

import json
import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..store.conflicts import StillConflicting

log = logging.getLogger("rlxf.annotate")


class APIError(Exception):
    def __init__(self, status: int, message: str, **extra):
        self.status, self.message, self.extra = status, message, extra


def error_response(status: int, message: str, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status in (429, 503) and "retry_after_s" in extra:
        extra["retry_after_s"] = round(extra["retry_after_s"], 2)
        headers = {"Retry-After": str(max(1, math.ceil(extra["retry_after_s"])))}
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> tuple[str, list]:
    details = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            return "the request body is not valid JSON", [{"msg": e.get("msg")}]
        if e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",):
            return "the request needs a JSON body", []
        details.append({"field": _field(e.get("loc", ())), "msg": e.get("msg", "")})
    first = details[0] if details else {"field": "body", "msg": "invalid"}
    return f'invalid request: "{first["field"]}": {first["msg"]}', details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return error_response(exc.status, exc.message, **exc.extra)

    @app.exception_handler(StillConflicting)
    async def _conflicting(_request: Request, exc: StillConflicting):
        log.warning("gave up after transient conflicts: %s", exc)
        return error_response(503, "the database is busy with conflicting requests: send it "
                                   "again", retry_after_s=1.0)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        message, details = _validation_message(exc)
        return error_response(422, message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        messages = {404: "no such page or API route", 405: "method not allowed on this route"}
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in (
            "Not Found", "Method Not Allowed") else messages.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error (logged on the server)")


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes with 413 (or `large_limit` on the
    routes in `large_routes`, (method, exact path) pairs), by Content-Length up front and by
    counting chunks of a streamed body."""

    def __init__(self, app, limit: int, large_limit: int,
                 large_routes: frozenset[tuple[str, str]]):
        self.app, self.limit = app, limit
        self.large_limit, self.large_routes = large_limit, large_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = (scope["method"], scope["path"].rstrip("/"))
        limit = self.large_limit if route in self.large_routes else self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    return await _send_json(send, 400, "Content-Length is not a number")
                if too_big:
                    return await _send_json(send, 413, _too_big(limit))
        seen = 0

        async def counting_receive():
            # FastAPI re-raises an HTTPException met while reading the body, so the client gets
            # this 413 (any other exception here would become a vague 400).
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, _too_big(limit))
            return message

        await self.app(scope, counting_receive, send)


def _too_big(limit: int) -> str:
    return f"request body too large (the limit here is {limit} bytes)"


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
