"""PROMPTS for `rlxf grpo|rloo|ppo`: JSONL rows with `prompt` (a string, or a list of
{role, content} messages) and any other fields, which reach the reward functions by name. A
bad row stops the command naming the file, the line and the field, before anything is
written."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from .common import TuneError


@dataclass(frozen=True)
class PromptRow:
    prompt: str | list[dict]
    fields: dict  # every other field of the row
    where: str    # "FILE line N"


def _check_prompt(prompt, where: str) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise TuneError(f"{where}: field 'prompt' is empty")
        return
    if not isinstance(prompt, list) or not prompt:
        raise TuneError(f"{where}: field 'prompt' must be a string or a non-empty list of "
                        f"{{role, content}} messages, got {type(prompt).__name__}")
    for j, m in enumerate(prompt):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            raise TuneError(f"{where}: field 'prompt' message {j} must be "
                            f'{{"role": str, "content": str}}, got {m!r}')
    if prompt[-1]["role"] == "assistant":
        raise TuneError(f"{where}: field 'prompt' ends with an assistant turn; the policy "
                        "writes that turn")


def load_prompts(path: Path) -> list[PromptRow]:
    if not path.is_file():
        raise TuneError(f"{path}: no such file")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TuneError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise TuneError(f"{where}: expected a JSON object with a 'prompt' field")
            if "prompt" not in row:
                raise TuneError(f"{where}: field 'prompt' is missing (fields: "
                                f"{', '.join(sorted(row)) or 'none'})")
            _check_prompt(row["prompt"], where)
            rows.append(PromptRow(row["prompt"],
                                  {k: v for k, v in row.items() if k != "prompt"}, where))
    if not rows:
        raise TuneError(f"{path}: no prompts")
    return rows


def split_heldout(rows: list[PromptRow], fraction: float, seed: int
                  ) -> tuple[list[PromptRow], list[PromptRow]]:
    """(train, held out): a seeded share of the rows, at least one each when fraction > 0."""
    if fraction == 0:
        return rows, []
    if len(rows) < 2:
        raise TuneError(f"{len(rows)} prompt: need at least 2 to hold some out "
                        "(or --eval-fraction 0)")
    order = list(range(len(rows)))
    random.Random(f"{seed}:heldout").shuffle(order)
    n = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    held = set(order[:n])
    return ([r for i, r in enumerate(rows) if i not in held],
            [r for i, r in enumerate(rows) if i in held])
