"""The model behind `rlxf serve`: a run directory's policy, a model directory or a LoRA adapter,
with its chat format, generating one reply at a time (seeded, optionally streamed)."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..models.build import load_causal_lm, load_tokenizer
from ..models.chat import chat_format
from ..models.lora import is_adapter_dir, is_reward_model_dir, load_adapter_lm

RUN_MODEL_STAGES = ("policy", "sft", "pretrain")  # a run dir serves its most trained model


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
    finish_reason: str  # "stop" (end of turn) | "length" (max_tokens)
    prompt_tokens: int
    completion_tokens: int


class ChatModel:
    def __init__(self, path: Path, name: str | None = None):
        self.model_dir = resolve_model_dir(Path(path))
        self.name = name or Path(path).resolve().name
        self.model = (load_adapter_lm(self.model_dir) if is_adapter_dir(self.model_dir)
                      else load_causal_lm(self.model_dir))
        self.tokenizer = load_tokenizer(self.model_dir)
        self.chat = chat_format(self.tokenizer)
        cfg = self.model.config
        self.context = (getattr(cfg, "max_position_embeddings", None)
                        or getattr(cfg, "n_positions", None) or 2048)
        self._lock = threading.Lock()  # one generation at a time: one model, one global RNG

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.chat.prompt_ids(messages)
        if len(ids) >= self.context:
            raise ValueError(f"the conversation is {len(ids)} tokens; {self.name} reads at "
                             f"most {self.context}")
        return ids

    def stream(self, messages: list[dict], *, temperature: float, top_p: float,
               max_tokens: int, seed: int) -> Iterator[str | Reply]:
        """Text pieces as they are generated, then the Reply. The pieces add up to the
        reply's text: each is the growth of decode(all ids so far)."""
        prompt = self.prompt_ids(messages)
        max_tokens = max(1, min(max_tokens, self.context - len(prompt)))
        ids_q: queue.Queue = queue.Queue()
        worker = threading.Thread(target=self._generate, daemon=True,
                                  args=(prompt, temperature, top_p, max_tokens, seed, ids_q))
        worker.start()
        ids: list[int] = []
        shown = ""
        while (item := ids_q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            ids.extend(item)
            text = self.chat.decode(ids)
            # Hold back a half-decoded multi-byte character until its last byte arrives.
            if text.startswith(shown) and not text.endswith("\ufffd") and len(text) > len(shown):
                yield text[len(shown):]
                shown = text
        text = self.chat.decode(ids)
        if text.startswith(shown) and len(text) > len(shown):
            yield text[len(shown):]
        stopped = any(t in self.chat.stop_ids for t in ids)
        yield Reply(text, "stop" if stopped else "length", len(prompt), len(ids))

    def complete(self, messages: list[dict], **params) -> Reply:
        *_, reply = self.stream(messages, **params)
        return reply

    @torch.no_grad()
    def _generate(self, prompt, temperature, top_p, max_tokens, seed, ids_q) -> None:
        from transformers.generation.streamers import BaseStreamer

        class Forward(BaseStreamer):
            first = True

            def put(self, value):
                if self.first:  # generate() puts the prompt first
                    self.first = False
                    return
                ids_q.put(value.reshape(-1).tolist())

            def end(self):
                pass

        sampling = (dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
                    if temperature > 0 else dict(do_sample=False))
        try:
            with self._lock:
                torch.manual_seed(seed)
                self.model.generate(input_ids=torch.tensor([prompt]),
                                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                    max_new_tokens=max_tokens, eos_token_id=self.chat.stop_ids,
                                    pad_token_id=self.tokenizer.pad_token_id,
                                    streamer=Forward(), **sampling)
        except BaseException as e:  # surfaces in the request, not in a dead thread
            ids_q.put(e)
        ids_q.put(None)
