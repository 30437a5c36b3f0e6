"""Step splitters for process reward models: where each step of a reply ends, as character
offsets into the decoded reply, and those offsets as token positions of the sampled ids.

- text (any PRM directory): a step is a non-blank line; it ends after its newline (the last one
  at the end of the text). Newline-separated steps are the convention of PRM800K (Lightman et
  al. 2023) and of Math-Shepherd's step format, one step a line.
- lab (the process stage's PRM): the multihop step format of world/multihop.py, one sentence a
  step, each ending with the word "."; words after the last "." are a last step."""

from __future__ import annotations

from typing import Callable


def text_step_ends(text: str) -> list[int]:
    ends, start = [], 0
    while start < len(text):
        newline = text.find("\n", start)
        end = len(text) if newline < 0 else newline + 1
        if text[start:end].strip():
            ends.append(end)
        elif ends:
            ends[-1] = end  # a blank line belongs to the step before it
        start = end
    return ends


def lab_step_ends(text: str) -> list[int]:
    """Word-level text: a step ends after each "." word; trailing words end one more step."""
    ends, pos = [], 0
    words = text.split(" ")
    for i, word in enumerate(words):
        pos += len(word) + (1 if i + 1 < len(words) else 0)
        if word == "." or (i + 1 == len(words) and word.strip()):
            ends.append(pos)
    return ends


def step_texts(text: str, char_ends: list[int]) -> list[str]:
    """Each step's text, stripped of the whitespace around it."""
    return [text[a:b].strip() for a, b in zip([0, *char_ends[:-1]], char_ends)]


def token_step_ends(decode: Callable[[list[int]], str], ids: list[int], text: str,
                    char_ends: list[int]) -> list[int]:
    """Each step's end as a token position (exclusive) in `ids` (`text` = decode(ids)): the
    fewest tokens whose decoded text reaches the step's last visible character (binary search:
    decoded length grows with the prefix), so whitespace after a step starts the next one. The
    last step takes every remaining token (the end of turn included), so a reply scored as one
    step gets one advantage on every token, as with an outcome reward."""
    out, low = [], 0
    for char_end in char_ends:
        end = len(text[:char_end].rstrip())
        lo, hi = low, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(decode(ids[:mid])) >= end:
                hi = mid
            else:
                lo = mid + 1
        out.append(lo)
        low = lo
    if out:
        out[-1] = len(ids)
    return out
