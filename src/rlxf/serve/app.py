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
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import install_error_envelopes, openai_error
from .model import ChatModel, PromptTooLong, Reply

DEFAULT_MAX_TOKENS = 256
MAX_N = 128  # choices per request


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
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the reply ends "
                                                           "before the first one")

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, stop):
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError(f"at most 4 stop strings, got {len(stop)}")
        return [stop] if isinstance(stop, str) else stop or []


def create_app(model: ChatModel) -> FastAPI:
    app = FastAPI(title=f"rlxf serve: {model.name}")
    install_error_envelopes(app)

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0,
                                            "owned_by": "rlxf"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        if req.model != model.name:
            return openai_error(404, f"The model {req.model!r} is not served here (this server: "
                                     f"{model.name!r})", param="model", code="model_not_found")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in req.messages]
        params = dict(temperature=req.temperature, top_p=req.top_p, n=req.n, stop=req.stop or [],
                      max_tokens=req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS,
                      seed=req.seed if req.seed is not None else random.randrange(2**31))
        try:  # rejected before anything is queued or streamed
            choices = model.submit(messages, **params)
        except PromptTooLong as e:
            return openai_error(400, str(e), param="messages", code="context_length_exceeded")
        except ValueError as e:  # e.g. a chat template that rejects these turns
            return openai_error(400, str(e), param="messages")
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": model.name}
        if req.stream:
            return StreamingResponse(_events(choices, head), media_type="text/event-stream")
        replies = [_last(choice) for choice in choices]
        return {**head, "object": "chat.completion",
                "choices": [{"index": i, "finish_reason": r.finish_reason,
                             "message": {"role": "assistant", "content": r.text}}
                            for i, r in enumerate(replies)],
                "usage": _usage(replies)}

    return app


def _last(choice) -> Reply:
    *_, reply = choice
    return reply


def _usage(replies: list[Reply]) -> dict:
    """The prompt once, the completions of every choice (OpenAI's count for n > 1)."""
    completion = sum(r.completion_tokens for r in replies)
    return {"prompt_tokens": replies[0].prompt_tokens, "completion_tokens": completion,
            "total_tokens": replies[0].prompt_tokens + completion}


def _events(choices, head: dict):
    """Server-sent events: each choice's role, its pieces, its finish; the last finish carries
    the usage of all choices. A request's choices decode in lockstep in one batch, so taking one
    item from each in turn never waits long on one while another has tokens."""
    def event(index: int, delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {**head, "object": "chat.completion.chunk",
                 "choices": [{"index": index, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    streams = {i: iter(c) for i, c in enumerate(choices)}
    replies: dict[int, Reply] = {}
    try:
        for i in streams:
            yield event(i, {"role": "assistant", "content": ""})
        while streams:
            for i, pieces in list(streams.items()):
                piece = next(pieces)
                if not isinstance(piece, Reply):
                    yield event(i, {"content": piece})
                    continue
                replies[i] = piece
                del streams[i]
                usage = {"usage": _usage([replies[k] for k in sorted(replies)])} if not streams else {}
                yield event(i, {}, piece.finish_reason, **usage)
        yield "data: [DONE]\n\n"
    finally:  # a client that disconnects mid-stream frees its rows
        for pieces in streams.values():
            pieces.close()
