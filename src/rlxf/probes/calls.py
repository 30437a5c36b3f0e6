"""The two callables the battery measures through, so any policy or reward model plugs in:
`generate(list of conversations) -> one response each` (a conversation is a list of
{"role", "content"} messages) and `score(prompts, responses) -> one reward each`."""

from __future__ import annotations

from typing import Callable

Messages = list[dict]
Generate = Callable[[list[Messages]], list[str]]
Score = Callable[[list[str], list[str]], list[float]]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def call_generate(generate: Generate, conversations: list[Messages]) -> list[str]:
    out = list(generate(conversations))
    if len(out) != len(conversations) or not all(isinstance(r, str) for r in out):
        raise ValueError(f"generate returned {len(out)} items for {len(conversations)} "
                         "conversations; expected one string per conversation")
    return out


def call_score(score: Score, prompts: list[str], responses: list[str]) -> list[float]:
    out = [float(x) for x in score(prompts, responses)]
    if len(out) != len(prompts):
        raise ValueError(f"score returned {len(out)} rewards for {len(prompts)} responses; "
                         "expected one number per response")
    return out
