"""Errors in OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}`, with OpenAI's
HTTP statuses (400 bad request, 404 unknown model or route, 405, 500), so OpenAI clients raise
their usual exceptions (BadRequestError, NotFoundError, ...) with a message a person can act on."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rlxf.serve")


def openai_error(status: int, message: str, *, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                   "code": code}}, status_code=status)


def _param(loc) -> str | None:
    """("body", "messages", 0, "role") -> "messages.0.role"."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or None


def install_error_envelopes(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return openai_error(400, "the request body is not valid JSON", code="invalid_json")
        param = _param(first.get("loc", ()))
        if first.get("type") == "missing" and param is None:
            return openai_error(400, "the request needs a JSON body")
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        return openai_error(400, f"{param or 'body'}: {message}", param=param,
                            code=first.get("type"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = {404: f"no route {request.method} {request.url.path} (this server has "
                        "GET /v1/models and POST /v1/chat/completions)",
                   405: f"method {request.method} not allowed on {request.url.path}"}
        return openai_error(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                            code={404: "unknown_url", 405: "method_not_allowed"}.get(
                                exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("generation failed on %s %s", request.method, request.url.path)
        return openai_error(500, f"the server failed to generate: {type(exc).__name__}: {exc}",
                            kind="server_error")
