"""OpenAI-compatible `/v1/models` and `/v1/chat/completions` (streaming as server-sent events)
for one ChatModel, so any OpenAI client -- or rlxf's own AI judge (`[feedback.ai] base_url`) --
can talk to a trained policy."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .model import ChatModel, Reply

DEFAULT_MAX_TOKENS = 256


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class ChatRequest(BaseModel):
    # Clients send fields this server does not use (user, logprobs=false, ...): ignored.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="one choice per request")


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


def create_app(model: ChatModel) -> FastAPI:
    app = FastAPI(title=f"rlxf serve: {model.name}")

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0,
                                            "owned_by": "rlxf"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        if req.model != model.name:
            return _error(404, f"model {req.model!r} is not served here (this server: "
                               f"{model.name!r})", "model_not_found")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in req.messages]
        params = dict(temperature=req.temperature, top_p=req.top_p,
                      max_tokens=req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS,
                      seed=req.seed if req.seed is not None else random.randrange(2**31))
        try:
            model.prompt_ids(messages)  # reject what cannot be encoded before streaming starts
        except ValueError as e:
            return _error(400, str(e))
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": model.name}
        if req.stream:
            return StreamingResponse(_events(model.stream(messages, **params), head),
                                     media_type="text/event-stream")
        reply = model.complete(messages, **params)
        return {**head, "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                             "message": {"role": "assistant", "content": reply.text}}],
                "usage": _usage(reply)}

    return app


def _usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


def _events(pieces, head: dict):
    def event(delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {**head, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for piece in pieces:
        if isinstance(piece, Reply):
            yield event({}, piece.finish_reason, usage=_usage(piece))
        else:
            yield event({"content": piece})
    yield "data: [DONE]\n\n"
