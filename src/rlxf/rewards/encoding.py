"""Prompt-file prompts as token ids, following TRL's row conventions: a message list goes
through the model's chat template (the assistant's turn opened); a plain string is raw text, as
TRL's GRPOTrainer and RewardTrainer use it, and its reply ends with <eos>. The lab world's
word-level tokenizer has no raw form: its prompts always take the lab format."""

from __future__ import annotations

from ..models.chat import ChatFormat
from .batch import messages_of


def prompt_ids(chat: ChatFormat, prompt) -> list[int]:
    if isinstance(prompt, str) and chat.kind != "lab":
        return chat.encode(prompt)
    return chat.prompt_ids(messages_of(prompt))


def response_ids(chat: ChatFormat, prompt, reply: str) -> list[int]:
    if isinstance(prompt, str) and chat.kind != "lab":
        return chat.encode(reply) + chat._eos()
    return chat.response_ids(messages_of(prompt), reply)
