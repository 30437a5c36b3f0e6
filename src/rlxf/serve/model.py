"""The model behind `rlxf serve`: a run directory's policy, a model directory or a LoRA adapter,
with its chat format, on the device and precision the training engine would pick; replies are
generated in batches (serve/scheduler.py, serve/decode.py), seeded, optionally streamed, cut at
stop strings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..models.build import load_causal_lm, load_tokenizer
from ..models.chat import chat_format
from ..models.lora import is_adapter_dir, is_reward_model_dir, load_adapter_lm
from .decode import Choice, decode
from .scheduler import Scheduler

RUN_MODEL_STAGES = ("policy", "sft", "pretrain")  # a run dir serves its most trained model
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_model_dir(path: Path) -> Path:
    """PATH itself, or for a lab run directory (ledger.jsonl) RUN/policy/model (else sft,
    base). A real command's OUT has a ledger too but is itself the model (tune/run_record.py)."""
    is_model = (path / "config.json").exists() or is_adapter_dir(path)
    if (path / "ledger.jsonl").exists() and not is_model:
        for stage in RUN_MODEL_STAGES:
            if (path / stage / "model" / "config.json").exists():
                return path / stage / "model"
        raise FileNotFoundError(f"{path}: a run directory without a trained model yet")
    if not is_model:
        raise FileNotFoundError(f"{path}: neither a run directory (ledger.jsonl), a model "
                                "directory (config.json) nor a LoRA adapter")
    if is_reward_model_dir(path):
        raise ValueError(f"{path}: is a reward model (a scalar score head), not a chat model; "
                         f"it cannot generate replies. Score responses with it: `rlxf score "
                         f"{path} DATA --out FILE.jsonl`")
    return path


@dataclass
class Reply:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) | "length" (max_tokens)
    prompt_tokens: int
    completion_tokens: int


class PromptTooLong(ValueError):
    """The conversation leaves no room in the model's context for a reply."""


class ChatModel:
    """The served model on its device and precision; requests go through one Scheduler, so
    concurrent requests share forward passes (serve/decode.py)."""

    def __init__(self, path: Path, name: str | None = None, *, device: str = "auto",
                 precision: str = "auto", max_batch: int = 8, window_s: float = 0.005):
        from ..train.engine import resolve_device, resolve_precision
        self.model_dir = resolve_model_dir(Path(path))
        self.name = name or Path(path).resolve().name
        self.device = torch.device(resolve_device(device))
        self.precision = resolve_precision(precision, self.device.type)
        model = (load_adapter_lm(self.model_dir) if is_adapter_dir(self.model_dir)
                 else load_causal_lm(self.model_dir))
        self.model = model.to(device=self.device, dtype=DTYPES[self.precision])
        self.tokenizer = load_tokenizer(self.model_dir)
        self.chat = chat_format(self.tokenizer)
        cfg = self.model.config
        self.context = (getattr(cfg, "max_position_embeddings", None)
                        or getattr(cfg, "n_positions", None) or 2048)
        self.scheduler = Scheduler(self._run_batch, max_batch=max_batch, window_s=window_s)

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.chat.prompt_ids(messages)
        if len(ids) >= self.context:
            raise PromptTooLong(f"the conversation is {len(ids)} tokens; {self.name} reads at "
                                f"most {self.context - 1} (one token of its {self.context}-token "
                                f"context is left for the reply)")
        return ids

    def submit(self, messages: list[dict], *, temperature: float, top_p: float, max_tokens: int,
               seed: int, n: int = 1, stop: list[str] = ()) -> list["ChoiceStream"]:
        """n choices of one request, queued for the next batch; each is iterated as text pieces
        then its Reply. Choice 0 samples from `seed` (it is the n = 1 reply), choice i > 0 from a
        seed mixed from (seed, i)."""
        prompt = self.prompt_ids(messages)
        max_tokens = max(1, min(max_tokens, self.context - len(prompt)))
        choices = [Choice(prompt, max_tokens, temperature, top_p, choice_seed(seed, i))
                   for i in range(n)]
        self.scheduler.submit(choices)
        return [ChoiceStream(self.chat, c, list(stop)) for c in choices]

    def stream(self, messages: list[dict], **params) -> Iterator[str | Reply]:
        """Text pieces as they are generated, then the Reply (one choice)."""
        yield from self.submit(messages, **params)[0]

    def complete(self, messages: list[dict], **params) -> Reply:
        *_, reply = self.stream(messages, **params)
        return reply

    def _run_batch(self, choices: list[Choice]) -> None:
        decode(self.model, choices, stop_ids=self.chat.stop_ids,
               pad_id=self.tokenizer.pad_token_id)


def choice_seed(seed: int, index: int) -> int:
    # torch's CPU generator keeps only 32 bits of a seed: mix (seed, index) into 32 bits rather
    # than adding a high offset that it would drop
    if index == 0:
        return seed % 2**63
    return int(np.random.SeedSequence([seed % 2**63, index]).generate_state(1)[0])


class ChoiceStream:
    """One choice's text as it is generated. The pieces add up to the reply's text: each is the
    growth of decode(all ids so far), cut before the first stop string; text that could be the
    start of a stop string, or a half-decoded multi-byte character, is held back until known."""

    def __init__(self, chat, choice: Choice, stop: list[str]):
        self.chat, self.choice, self.stop = chat, choice, [s for s in stop if s]

    def __iter__(self) -> Iterator[str | Reply]:
        ids: list[int] = []
        shown = ""
        try:
            while (item := self.choice.tokens.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                ids.append(item)
                text = self.chat.decode(ids)
                cut = self._stop_at(text)
                if cut is not None:  # a stop string: the reply ends before it
                    self.choice.cancelled.set()
                    yield from _growth(shown, text[:cut])
                    yield Reply(text[:cut], "stop", len(self.choice.prompt), len(ids))
                    return
                safe = text[:len(text) - self._held(text)]
                if not safe.endswith("\ufffd") and len(safe) > len(shown):
                    yield from _growth(shown, safe)
                    shown = safe
            text = self.chat.decode(ids)
            yield from _growth(shown, text)
            stopped = any(t in self.chat.stop_ids for t in ids)
            yield Reply(text, "stop" if stopped else "length", len(self.choice.prompt), len(ids))
        finally:  # the client went away (or the reply is done): free the row
            self.choice.cancelled.set()

    def _stop_at(self, text: str) -> int | None:
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _held(self, text: str) -> int:
        """How many trailing characters could begin a stop string."""
        return max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])),
                   default=0)


def _growth(shown: str, text: str) -> Iterator[str]:
    if text.startswith(shown) and len(text) > len(shown):
        yield text[len(shown):]
