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

`sequences` builds training sequences the way TRL 1.16's SFT, reward and DPO trainers do: the
prompt alone and prompt + each response are tokenized whole, and the responses start where those
token sequences diverge (`split_prompt`; a token that merges across the boundary goes to the
response). A plain-string TRL row (`raw`) is not wrapped in any template: the prompt text, then
prompt + response + the eos token's text, tokenized with the tokenizer's own special tokens (a
Llama tokenizer's <s>), as TRL does for "standard" rows. `assistant_mask` marks every assistant
turn of a conversation (multi-turn SFT), as TRL's assistant-only loss does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import tokenizer as lab

Messages = list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}]


def render_text(messages: list[dict]) -> str:
    """A chat request as plain text, for a local LM without a chat template."""
    return "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages) + \
        "\n\nASSISTANT:\n"


class ChatTemplateError(ValueError):
    """The tokenizer's chat template raised on a conversation (e.g. no system role)."""


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

    def sequences(self, messages: Messages, responses: list[str], raw: bool = False
                  ) -> tuple[list[int], list[list[int]]]:
        """(prompt ids, [response ids]) for one prompt and its responses, as TRL tokenizes them
        (module docstring). `raw`: `messages` is one user turn holding a plain-string prompt."""
        if self.kind == "lab" or (self.kind == "plain" and not raw):
            return (self.prompt_ids(messages),
                    [self.response_ids(messages, r) for r in responses])
        if raw:
            text = _last_user(messages)
            eos = self.tokenizer.eos_token or ""
            prompt = self._call(text)
            fulls = [self._call(text + r + ("" if r.endswith(eos) else eos)) for r in responses]
        else:
            prompt = self.encode(self._template(messages, add_generation_prompt=True))
            fulls = [self.encode(self._template(
                messages + [{"role": "assistant", "content": r}], add_generation_prompt=False))
                for r in responses]
        return split_prompt(prompt, fulls)

    def assistant_mask(self, messages: Messages) -> tuple[list[int], list[int]]:
        """(ids, mask) of a whole conversation with the template: mask 1 on each assistant
        turn's tokens and what closes the turn (e.g. `<|im_end|>`), 0 elsewhere -- what
        `apply_chat_template(return_assistant_tokens_mask=True)` gives (and TRL's
        assistant_only_loss trains on) for a template that marks its assistant turns."""
        if self.kind != "template":
            raise ValueError("multi-turn masks need a chat template")
        full = self.encode(self._template(messages, add_generation_prompt=False))
        mask = [0] * len(full)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = _common_prefix(self.encode(self._template(
                messages[:i], add_generation_prompt=True)), full)
            end = _common_prefix(self.encode(self._template(
                messages[: i + 1], add_generation_prompt=False)), full)
            mask[start:end] = [1] * (end - start)
        return full, mask

    def _call(self, text: str) -> list[int]:
        """The tokenizer's own encoding, special tokens included (TRL's `tokenizer(text=...)`)."""
        return list(self.tokenizer(text=text)["input_ids"])

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
        from jinja2 import TemplateError
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        except TemplateError as e:
            roles = ", ".join(m["role"] for m in messages)
            hint = (" (this template takes no system turn: drop it from the data)"
                    if "system" in roles else "")
            raise ChatTemplateError(f"the model's chat template rejects a conversation with "
                                    f"turns [{roles}]: {e}{hint}") from None

    def _eos(self) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return [eos] if eos is not None else []


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def split_prompt(prompt: list[int], fulls: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """TRL's split: the prompt is `prompt` up to where it and every full sequence diverge
    (never the whole of a full sequence: each response keeps at least one token)."""
    cut = min([_common_prefix(prompt, f) for f in fulls] + [len(f) - 1 for f in fulls])
    return prompt[:cut], [f[cut:] for f in fulls]


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
