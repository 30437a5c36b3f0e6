"""`rlxf score MODEL_DIR DATA --out FILE.jsonl`: the reward of each prompt/response row under a
reward model (an `rlxf reward` output, a reward adapter, or any one-label
`AutoModelForSequenceClassification` directory). Each row is tokenized as the reward model was
trained on it (models/chat.py, `sequences`: a plain-string row as raw text + eos, a
conversational row with the chat template) and scored by the model's own forward, so the
number is what transformers or TRL would read from the model. The output is the input rows with
`reward` added (an `rlxf reward --aspects` model: `rewards`, one per aspect), written
atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..data.formats import FieldError, messages as read_messages
from ..data.io import open_rows, write_records
from ..feedback.record import RecordError
from ..models.reward_heads import HEADS_FILE
from .common import TuneError, context_limit, load_model_tokenizer

RESPONSE_FIELDS = ("completion", "response")


def _row(row: dict) -> tuple[list[dict], str, bool]:
    """(messages ending with the user turn, response, raw) of one row."""
    prompt = row.get("prompt")
    name = next((f for f in RESPONSE_FIELDS if row.get(f) is not None), None)
    if prompt is None:
        raise FieldError("prompt", "is missing", missing=True)
    if name is None:
        raise FieldError("completion", 'is missing (expected "completion" or "response")',
                         missing=True)
    response = row[name]
    if isinstance(prompt, str) and isinstance(response, str):
        return [{"role": "user", "content": prompt}], response, True
    if isinstance(prompt, list) and isinstance(response, list):
        head, tail = read_messages(prompt, "prompt"), read_messages(response, name)
        if len(tail) != 1 or tail[0]["role"] != "assistant":
            raise FieldError(name, "must be one assistant message")
        return head, tail[0]["content"], False
    raise FieldError(name, "and prompt must both be strings or both message lists")


def _load_scorer(model_dir: Path):
    from ..models.build import load_reward_model
    from ..models.lora import is_adapter_dir, is_reward_model_dir, load_adapter_lm

    if not ((model_dir / "config.json").exists() or is_adapter_dir(model_dir)):
        raise TuneError(f"{model_dir}: not a Hugging Face model directory (no config.json) "
                        "nor a LoRA adapter")
    if not is_reward_model_dir(model_dir):
        raise TuneError(f"{model_dir}: not a reward model (no sequence-classification head); "
                        "train one with `rlxf reward`")
    tok = load_model_tokenizer(model_dir)
    model = load_adapter_lm(model_dir) if is_adapter_dir(model_dir) else \
        load_reward_model(model_dir)
    heads = None
    if (model_dir / HEADS_FILE).exists():  # rlxf reward --aspects: one output per aspect
        heads = json.loads((model_dir / HEADS_FILE).read_text())["heads"]
    if model.config.num_labels != len(heads or [None]):
        raise TuneError(f"{model_dir}: has {model.config.num_labels} outputs and no "
                        f"{HEADS_FILE} naming them; rlxf score reads a one-label reward model "
                        "or an `rlxf reward --aspects` model")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok, heads


def score_file(model_dir: Path, data: Path, out: Path, batch_size: int = 16,
               max_length: int = 2048,
               progress: Callable[[int, int], None] | None = None) -> dict:
    from ..models.chat import chat_format
    from ..models.reward_scores import score_heads

    if out.exists():
        raise TuneError(f"{out}: already exists (choose another --out or remove it)")
    model, tok, heads = _load_scorer(model_dir)
    chat = chat_format(tok)
    limit = context_limit(model, max_length)
    rows, prompts, responses, truncated = [], [], [], 0
    with open_rows(data) as reader:
        for n, row in reader:
            try:
                msgs, response, raw = _row(row)
                prompt, (ids,) = chat.sequences(msgs, [response], raw)
            except (FieldError, ValueError) as e:
                raise RecordError(f"{data} {reader.unit} {n}: {e} (expected prompt and "
                                  "completion, both strings or both message lists)") from None
            if len(prompt) >= limit:
                raise RecordError(f"{data} {reader.unit} {n}: the prompt is {len(prompt)} "
                                  f"tokens; the model reads at most {limit}")
            truncated += len(prompt) + len(ids) > limit
            rows.append(row)
            prompts.append(prompt)
            responses.append(ids[: limit - len(prompt)])
    rewards: list[list[float]] = []
    for b in range(0, len(rows), batch_size):
        rewards += score_heads(model, prompts[b: b + batch_size], responses[b: b + batch_size],
                               model.config.pad_token_id, batch_size)
        if progress:
            progress(len(rewards), len(rows))
    write_records(out, [{**row, **({"rewards": dict(zip(heads, r))} if heads
                                   else {"reward": r[0]})}
                        for row, r in zip(rows, rewards)])
    return {"rows": len(rows), "truncated": truncated, "out": str(out)}
