"""How a conversation becomes token ids for a given tokenizer, and generated ids become text.

Three formats, chosen from the tokenizer (`chat_format`):
- **template**: the tokenizer has a chat template. The prompt is
  `apply_chat_template(messages, add_generation_prompt=True)`; the response is what the template
  adds after that for the assistant turn (the reply and the template's end-of-turn, e.g.
  `<|im_end|>`), so a trained model learns to close its turn the way the template does.
- **plain**: no chat template. The prompt is `<bos>` + "ROLE:\\ncontent" blocks ending with
  "ASSISTANT:\\n" (the same text the local AI judge uses); the response is the reply + `<eos>`.
- **lab**: the lab world's word-level tokenizer (`<user>`/`<assistant>` tokens, no template):
  `<bos> <user> prompt <assistant>` and the reply + `<eos>`, as every lab stage writes them.

Prompt and response are encoded separately (as TRL's DPO does), so the prompt/response boundary
is exact and the loss masks are simple.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..feedback.constitution import render_text
from . import tokenizer as lab

Messages = list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}]


@dataclass
class ChatFormat:
    tokenizer: object
    kind: str  # "template" | "plain" | "lab"
    stop_ids: list[int] = field(default_factory=list)  # generation ends at any of these

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Messages) -> list[int]:
        """The conversation so far, ending where the assistant's reply begins."""
        if self.kind == "lab":
            # The lab world's language has single-turn prompts: the last user turn is the prompt.
            return lab.prompt_ids(self.tokenizer, _last_user(messages))
        if self.kind == "template":
            return self.encode(self._template(messages, add_generation_prompt=True))
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + self.encode(render_text(messages))

    def response_ids(self, messages: Messages, response: str) -> list[int]:
        """The assistant's reply to `messages`, with whatever closes its turn."""
        if self.kind == "lab":
            return lab.response_ids(self.tokenizer, response)
        if self.kind == "template":
            prompt = self._template(messages, add_generation_prompt=True)
            full = self._template(messages + [{"role": "assistant", "content": response}],
                                  add_generation_prompt=False)
            if full.startswith(prompt) and len(full) > len(prompt):
                return self.encode(full[len(prompt):])
        # No template, or one whose assistant turn does not extend its generation prompt.
        return self.encode(response) + self._eos()

    def decode(self, ids: list[int]) -> str:
        """Generated ids -> the reply: up to the first stop token, special tokens dropped."""
        if self.kind == "lab":
            return lab.decode_response(self.tokenizer, ids)
        for i, t in enumerate(ids):
            if t in self.stop_ids:
                ids = ids[:i]
                break
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _template(self, messages: Messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _eos(self) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return [eos] if eos is not None else []


def _last_user(messages: Messages) -> str:
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise ValueError("a conversation needs a user turn")
    return users[-1]


def is_lab_tokenizer(tokenizer) -> bool:
    specials = set(tokenizer.all_special_tokens)
    return {lab.USER, lab.ASSISTANT} <= specials and not getattr(tokenizer, "chat_template", None)


def chat_format(tokenizer) -> ChatFormat:
    if is_lab_tokenizer(tokenizer):
        return ChatFormat(tokenizer, "lab", [tokenizer.eos_token_id])
    if not getattr(tokenizer, "chat_template", None):
        return ChatFormat(tokenizer, "plain", [tokenizer.eos_token_id])
    fmt = ChatFormat(tokenizer, "template")
    # The end-of-turn the template writes (e.g. <|im_end|>) stops generation, as well as <eos>.
    probe = [{"role": "user", "content": "hi"}]
    special = set(tokenizer.all_special_ids)
    closing = {t for t in fmt.response_ids(probe, "x") if t in special}
    fmt.stop_ids = sorted(closing | set(fmt._eos()))
    return fmt
