"""What every reward source scores: B completions with the prompts and prompt-file rows they
answer, in the shapes TRL passes to reward functions."""

from __future__ import annotations

from dataclasses import dataclass, field


class RewardError(ValueError):
    """A reward source failed or answered badly: the message names the source and the row."""


@dataclass(frozen=True)
class RewardBatch:
    """B completions; index i is completion i. `prompts[i]` is the row's `prompt` as written in
    the prompt file (a string, or a list of {role, content} messages), `completions[i]` the
    decoded reply (TRL's shape: a string for a string prompt, else [{"role": "assistant",
    "content": reply}]), `fields[i]` the row's other fields, `where[i]` "FILE line N"."""
    prompts: list
    texts: list[str]              # the decoded replies, always strings
    completion_ids: list[list[int]]
    fields: list[dict]
    where: list[str]
    truncated: list[bool] = field(default_factory=list)  # reply cut at max_new_tokens

    @property
    def completions(self) -> list:
        return [t if isinstance(p, str) else [{"role": "assistant", "content": t}]
                for p, t in zip(self.prompts, self.texts)]

    def __len__(self) -> int:
        return len(self.texts)


def messages_of(prompt) -> list[dict]:
    """A row's prompt as a conversation."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
