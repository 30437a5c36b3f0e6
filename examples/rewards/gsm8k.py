"""Reward functions in TRL's signature, for `rlxf grpo MODEL PROMPTS --reward
examples/rewards/gsm8k.py:exact_answer` (they work unchanged with TRL's GRPOTrainer too).

PROMPTS rows look like GSM8K's: {"prompt": "...", "answer": "... #### 72"}; `answer` reaches the
functions as a keyword argument, one value per completion."""

import re

FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def _text(completion) -> str:
    """A completion as text: TRL passes a string for string prompts, else a message list."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def _number(text: str | None) -> str | None:
    """The number after the last `####`, commas dropped ("1,000" == "1000")."""
    if text is None:
        return None
    found = FINAL.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "")
    return value.rstrip("0").rstrip(".") if "." in value else value


def exact_answer(prompts, completions, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's final `#### N` equals the row's answer (its `#### N`, or the
    whole field if it is a bare number), else 0.0; None for rows without an answer."""
    out = []
    for completion, gold in zip(completions, answer or [None] * len(completions)):
        if gold is None:
            out.append(None)
            continue
        target = _number(str(gold)) or _number("#### " + str(gold).strip())
        out.append(1.0 if target is not None and _number(_text(completion)) == target else 0.0)
    return out


def format_reward(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion ends with exactly one final answer line `#### N`, else 0.0."""
    return [1.0 if len(FINAL.findall(_text(c))) == 1 and
            re.search(r"####\s*-?[\d,]*\.?\d+\s*$", _text(c)) else 0.0 for c in completions]


def length_penalty(prompts, completions, completion_ids, max_tokens=256, **kwargs) -> list[float]:
    """-(tokens beyond half of `max_tokens`) / half, down to -1: no penalty for short answers,
    a linear one that reaches -1 at `max_tokens` (DAPO's soft overlong punishment, simplified)."""
    half = max_tokens / 2
    return [-min(1.0, max(0.0, len(ids) - half) / half) for ids in completion_ids]
