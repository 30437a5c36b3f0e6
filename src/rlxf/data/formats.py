"""Public preference datasets -> canonical feedback records: one converter per format.

A converter takes one row of the dataset (a dict, as `datasets` reads it) and returns the
canonical records it holds, as dicts without `id` and file provenance (the importer adds them,
with the row's line, and validates every record as a `FeedbackRecord`). A row it cannot convert
raises `FieldError` naming the field and what was expected.

`item_id` is a hash of what was judged (context, prompt, responses in order, and the aspect when
a dataset judges the same pair twice), so the same comparison gets the same item_id in every
file and format, and a record's `responses` keep the dataset's order (A/B, response_0/1, or
chosen first where the dataset only has chosen/rejected).

Field names follow the public dataset cards: Anthropic/hh-rlhf, openbmb/UltraFeedback,
HuggingFaceH4/ultrafeedback_binarized, PKU-Alignment/PKU-SafeRLHF, nvidia/HelpSteer2,
stanfordnlp/SHP, and TRL's preference formats (huggingface.co/docs/trl/dataset_formats).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Callable

ROLES = ("system", "user", "assistant")


class FieldError(ValueError):
    """A row that does not match its format; `missing` says the field is absent or null."""

    def __init__(self, field: str, problem: str, missing: bool = False):
        super().__init__(f'"{field}" {problem}')
        self.missing = missing


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    names = {str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def need(value, field: str, kind: type | tuple = str, what: str = "a string"):
    """`value`, which must be present (not null) and of `kind`."""
    if value is None:
        raise FieldError(field, "is missing", missing=True)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise FieldError(field, f"is {_kind(value)}, expected {what}")
    return value


def get(row: dict, name: str, kind: type | tuple = str, what: str = "a string"):
    return need(row.get(name), name, kind, what)


def number(row: dict, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = get(row, name, (int, float), "a number")
    if not low <= value <= high:  # also rejects NaN
        bounds = f"a number from {low:g} to {high:g}" if math.isfinite(low) else "a finite number"
        raise FieldError(name, f"is {value}, expected {bounds}")
    return value


def index01(row: dict, name: str) -> int:
    value = get(row, name, (int, float), "0 or 1")
    if value not in (0, 1):
        raise FieldError(name, f"is {value}, expected 0 or 1")
    return int(value)


def known(**fields) -> dict:
    """The fields that the row had (provenance leaves out what a dataset does not give)."""
    return {k: v for k, v in fields.items() if v is not None}


def messages(value, field: str) -> list[dict]:
    """A conversation: a list of {role, content} with role system, user or assistant."""
    need(value, field, list, "a list of {role, content} messages")
    out = []
    for i, m in enumerate(value):
        need(m, f"{field}[{i}]", dict, "{role, content}")
        if m.get("role") not in ROLES:
            raise FieldError(f"{field}[{i}].role", f"is {m.get('role')!r}, expected "
                                                   "system, user or assistant")
        need(m.get("content"), f"{field}[{i}].content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def split_conversations(chosen: list[dict], rejected: list[dict], field=("chosen", "rejected")):
    """Two conversations that share every turn but their final assistant message ->
    (context, prompt, chosen response, rejected response). The shared prefix must end with
    the user turn being answered; the turns before it are the context."""
    for conv, name in zip((chosen, rejected), field):
        if not conv or conv[-1]["role"] != "assistant":
            raise FieldError(name, "does not end with an assistant turn (expected a "
                                   "conversation whose last turn is the judged response)")
    prefix = chosen[:-1]
    if rejected[:-1] != prefix:
        raise FieldError(field[1], f'differs from "{field[0]}" before the final assistant turn '
                                   "(expected the same conversation with a different last reply)")
    if not prefix or prefix[-1]["role"] != "user":
        raise FieldError(field[0], "has no user turn before the final assistant turn "
                                   "(expected the prompt to be the shared prefix)")
    return prefix[:-1], prefix[-1]["content"], chosen[-1]["content"], rejected[-1]["content"]


def item_id(context: list[dict], prompt: str, responses: list[str], aspect: str | None = None):
    blob = json.dumps([context, prompt, responses], ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"{digest}/{aspect}" if aspect else digest


def pairwise(context, prompt, responses, choice, *, annotator, source, aspect=None,
             **fields) -> dict:
    return {"item_id": item_id(context, prompt, responses, aspect), "type": "pairwise",
            "prompt": prompt, "context": context, "responses": responses, "choice": choice,
            "annotator": annotator, "source": source, **fields}


def rating(context, prompt, response, ratings, *, annotator, source, **fields) -> dict:
    return {"item_id": item_id(context, prompt, [response]), "type": "rating", "prompt": prompt,
            "context": context, "responses": [response], "ratings": ratings,
            "annotator": annotator, "source": source, **fields}


# --- Anthropic/hh-rlhf --------------------------------------------------------------------

_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")


def _hh_transcript(text: str, field: str) -> list[dict]:
    parts = _HH_TURN.split("\n\n" + text.lstrip("\n"))
    if parts[0].strip() or len(parts) < 3:
        raise FieldError(field, 'is not a transcript (expected "\\n\\nHuman: ...\\n\\nAssistant: '
                                '..." turns)')
    return [{"role": "user" if parts[i] == "Human" else "assistant", "content": parts[i + 1]}
            for i in range(1, len(parts), 2)]


def hh_rlhf(row: dict) -> list[dict]:
    """HH-RLHF: the transcripts' shared turns become context and prompt, their final
    assistant turns the two responses (chosen first, choice 0)."""
    chosen = _hh_transcript(get(row, "chosen", str, "a transcript string"), "chosen")
    rejected = _hh_transcript(get(row, "rejected", str, "a transcript string"), "rejected")
    context, prompt, c, r = split_conversations(chosen, rejected)
    return [pairwise(context, prompt, [c, r], 0, annotator={"id": "hh-rlhf:unknown"},
                     source="human")]


# --- openbmb/UltraFeedback ----------------------------------------------------------------

UF_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
UF_JUDGE = "gpt-4"


def _uf_rating(annotation, field: str) -> float | None:
    value = need(annotation, field, dict, "{Rating, Rationale}").get("Rating")
    if value == "N/A":
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not 1 <= score <= 5:
        raise FieldError(f"{field}.Rating", f'is {value!r}, expected 1-5 or "N/A"')
    return score


def ultrafeedback(row: dict) -> list[dict]:
    """UltraFeedback (raw): one rating record per completion, the GPT-4 aspect ratings
    (helpfulness, honesty, instruction_following, truthfulness; 1-5, "N/A" left out) as
    ratings and GPT-4's critique as critique."""
    prompt = get(row, "instruction")
    completions = get(row, "completions", list, "a list of completions")
    out = []
    for i, comp in enumerate(completions):
        field = f"completions[{i}]"
        need(comp, field, dict, "a completion object")
        response = need(comp.get("response"), f"{field}.response")
        annotations = need(comp.get("annotations"), f"{field}.annotations", dict,
                           "{aspect: {Rating, Rationale}}")
        ratings = {}
        for aspect in UF_ASPECTS:
            if aspect in annotations:
                score = _uf_rating(annotations[aspect], f"{field}.annotations.{aspect}")
                if score is not None:
                    ratings[aspect] = score
        if not ratings:
            raise FieldError(f"{field}.annotations", f"has no numeric rating (expected "
                                                     f"a 1-5 Rating for one of {UF_ASPECTS})")
        provenance = known(judge=UF_JUDGE, scale="aspect ratings 1-5; overall_score 1-10 "
                                                 "(from the critique)",
                           completion=i, model=comp.get("model"), principle=comp.get("principle"),
                           overall_score=comp.get("overall_score"),
                           prompt_source=row.get("source"))
        out.append(rating([], prompt, response, ratings, annotator={"id": UF_JUDGE},
                          source="ai", critique=comp.get("critique") or None,
                          provenance=provenance))
    return out


# --- HuggingFaceH4/ultrafeedback_binarized ------------------------------------------------

def ultrafeedback_binarized(row: dict) -> list[dict]:
    """UltraFeedback binarized: chosen and rejected conversations (message lists) ->
    pairwise, chosen first; score_chosen/score_rejected kept in provenance."""
    chosen = messages(get(row, "chosen", list, "a list of messages"), "chosen")
    rejected = messages(get(row, "rejected", list, "a list of messages"), "rejected")
    context, prompt, c, r = split_conversations(chosen, rejected)
    provenance = known(judge=UF_JUDGE, score_chosen=row.get("score_chosen"),
                       score_rejected=row.get("score_rejected"))
    return [pairwise(context, prompt, [c, r], 0, annotator={"id": UF_JUDGE}, source="ai",
                     prompt_id=row.get("prompt_id"), provenance=provenance)]


# --- PKU-Alignment/PKU-SafeRLHF -----------------------------------------------------------

def pku_saferlhf(row: dict, aspects: tuple[str, ...] = ("better", "safer")) -> list[dict]:
    """PKU-SafeRLHF: two pairwise records per row, one per aspect -- "better"
    (better_response_id, helpfulness) and "safer" (safer_response_id, harmlessness). They
    never share an item_id (item_id ends in /better or /safer; provenance.aspect says the
    same), so majorities and agreement are computed per aspect. pku-saferlhf-better and
    pku-saferlhf-safer keep one aspect's pair only."""
    prompt = get(row, "prompt")
    responses = [get(row, "response_0"), get(row, "response_1")]
    choices = {"better": index01(row, "better_response_id"),
               "safer": index01(row, "safer_response_id")}
    common = known(**{key: row.get(key) for key in (
        "is_response_0_safe", "is_response_1_safe", "response_0_severity_level",
        "response_1_severity_level", "response_0_source", "response_1_source")})
    return [pairwise([], prompt, responses, choice, aspect=aspect, source="human",
                     annotator={"id": "pku-saferlhf:unknown"},
                     provenance={"aspect": aspect, **common})
            for aspect, choice in choices.items() if aspect in aspects]


def pku_saferlhf_better(row: dict) -> list[dict]:
    """PKU-SafeRLHF, the "better" (helpfulness) pair of each row only."""
    return pku_saferlhf(row, ("better",))


def pku_saferlhf_safer(row: dict) -> list[dict]:
    """PKU-SafeRLHF, the "safer" (harmlessness) pair of each row only."""
    return pku_saferlhf(row, ("safer",))


# --- nvidia/HelpSteer2 --------------------------------------------------------------------

HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
_HELPSTEER_TURN = re.compile(r"\n?<extra_id_1>(User|Assistant)\n")


def _helpsteer_prompt(text: str) -> tuple[list[dict], str]:
    """Multi-turn prompts are "{user 1}\\n<extra_id_1>Assistant\\n{assistant 1}\\n
    <extra_id_1>User\\n{user 2}": the last user turn is the prompt, the rest context."""
    parts = _HELPSTEER_TURN.split(text)
    turns = [{"role": "user", "content": parts[0]}]
    turns += [{"role": parts[i].lower(), "content": parts[i + 1]}
              for i in range(1, len(parts), 2)]
    if turns[-1]["role"] != "user":
        raise FieldError("prompt", "ends with an assistant turn (expected the last "
                                   "<extra_id_1>User turn to be the prompt)")
    return turns[:-1], turns[-1]["content"]


def helpsteer2(row: dict) -> list[dict]:
    """HelpSteer2: one rating record per row with the five human attributes (0-4) as
    ratings; a multi-turn prompt is split into context and the last user turn."""
    context, prompt = _helpsteer_prompt(get(row, "prompt"))
    response = get(row, "response")
    ratings = {a: number(row, a, 0, 4) for a in HELPSTEER_ATTRIBUTES}
    return [rating(context, prompt, response, ratings, annotator={"id": "helpsteer2:unknown"},
                   source="human", provenance={"scale": "0-4 per attribute; complexity and "
                                                        "verbosity are not quality"})]


# --- stanfordnlp/SHP -----------------------------------------------------------------------

def shp(row: dict) -> list[dict]:
    """SHP: the post and its two comments (A first); labels 1 means A is preferred. The
    preferred comment's score / the other's (SHP's score_ratio) is the strength."""
    post_id = get(row, "post_id")
    history = get(row, "history")
    responses = [get(row, "human_ref_A"), get(row, "human_ref_B")]
    label = index01(row, "labels")
    score_a, score_b = number(row, "score_A"), number(row, "score_B")
    preferred, other = (score_a, score_b) if label == 1 else (score_b, score_a)
    if other <= 0 or preferred <= other:
        raise FieldError("labels", f"is {label} but score_A={score_a:g}, score_B={score_b:g} "
                                   "(expected the preferred comment to have the higher, "
                                   "positive score)")
    provenance = known(strength="score ratio: the preferred comment's Reddit score / the "
                                "other's (SHP score_ratio)",
                       score_A=score_a, score_B=score_b, domain=row.get("domain"),
                       comment_A=row.get("c_root_id_A"), comment_B=row.get("c_root_id_B"))
    return [pairwise([], history, responses, 0 if label == 1 else 1, strength=preferred / other,
                     prompt_id=post_id, source="human", provenance=provenance,
                     annotator={"id": "shp:reddit-votes", "group": row.get("domain")})]


# --- TRL preference formats ---------------------------------------------------------------

def trl(row: dict) -> list[dict]:
    """TRL preference: standard {prompt, chosen, rejected} strings, conversational message
    lists, or implicit prompt {chosen, rejected} conversations whose shared prefix is the
    prompt. Chosen first, choice 0; provenance.trl_row says which shape (training follows
    TRL's convention for it)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    need(chosen, "chosen", (str, list), "a string or a list of messages")
    need(rejected, "rejected", (str, list), "a string or a list of messages")
    prompt = row.get("prompt")
    if isinstance(chosen, str) and isinstance(rejected, str):
        if prompt is None:
            raise FieldError("prompt", "is missing: an implicit prompt needs conversations "
                                       "(message lists) whose shared prefix is the prompt; with "
                                       "strings, give the prompt (or use hh-rlhf for HH "
                                       "transcripts)")
        if not isinstance(prompt, str):
            raise FieldError("prompt", f"is {_kind(prompt)} but chosen/rejected are strings "
                                       "(expected all strings or all message lists)")
        context, c, r = [], chosen, rejected
    elif isinstance(chosen, list) and isinstance(rejected, list):
        if prompt is not None and not isinstance(prompt, list):
            raise FieldError("prompt", f"is {_kind(prompt)} but chosen/rejected are message "
                                       "lists (expected all strings or all message lists)")
        head = messages(prompt or [], "prompt")
        context, prompt, c, r = split_conversations(head + messages(chosen, "chosen"),
                                                     head + messages(rejected, "rejected"))
    else:
        raise FieldError("rejected", f'is {_kind(rejected)} but "chosen" is {_kind(chosen)} '
                                     "(expected both strings or both message lists)")
    shape = "standard" if isinstance(chosen, str) else "conversational"
    return [pairwise(context, prompt, [c, r], 0, annotator={"id": "trl:unknown"},
                     source="human", provenance={TRL_ROW: shape})]


TRL_ROW = "trl_row"  # provenance key: the TRL row shape a record came from


def is_standard_row(provenance: dict) -> bool:
    """A record from a plain-string TRL row, which TRL trains on as raw text (no template)."""
    return provenance.get(TRL_ROW) == "standard"


@dataclass(frozen=True)
class Format:
    name: str
    dataset: str
    convert: Callable[[dict], list[dict]]
    expects: str

    @property
    def summary(self) -> str:
        return " ".join(self.convert.__doc__.split())


FORMATS = {f.name: f for f in [
    Format("hh-rlhf", "Anthropic/hh-rlhf", hh_rlhf, "chosen/rejected transcripts"),
    Format("ultrafeedback", "openbmb/UltraFeedback", ultrafeedback,
           "instruction and completions with annotations"),
    Format("ultrafeedback-binarized", "HuggingFaceH4/ultrafeedback_binarized",
           ultrafeedback_binarized, "chosen/rejected message lists"),
    Format("pku-saferlhf", "PKU-Alignment/PKU-SafeRLHF", pku_saferlhf,
           "prompt, response_0/1, better_response_id, safer_response_id"),
    Format("pku-saferlhf-better", "PKU-Alignment/PKU-SafeRLHF", pku_saferlhf_better,
           "prompt, response_0/1, better_response_id"),
    Format("pku-saferlhf-safer", "PKU-Alignment/PKU-SafeRLHF", pku_saferlhf_safer,
           "prompt, response_0/1, safer_response_id"),
    Format("helpsteer2", "nvidia/HelpSteer2", helpsteer2,
           "prompt, response and " + ", ".join(HELPSTEER_ATTRIBUTES) + " (0-4)"),
    Format("shp", "stanfordnlp/SHP", shp,
           "post_id, history, human_ref_A/B, labels, score_A/B"),
    Format("trl", "TRL preference", trl, "prompt/chosen/rejected"),
]}
