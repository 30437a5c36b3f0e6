"""Dataset files -> what `rlxf sft`, `rlxf reward` and `rlxf dpo` train on.

Plain-string TRL rows keep TRL's convention (raw text + eos, no chat template: `raw`); message
lists get the model's chat template (docs/REAL_MODELS.md, "Row shapes").

Preferences come from canonical feedback JSONL (a run's feedback, `rlxf data import`, the
annotation app's export) or from any format `rlxf data import` knows (TRL by default), converted
by the same importer and reduced by the same majority rule as `rlxf data export`. Demonstrations
come from TRL's SFT formats (prompt/completion, messages) or from preference data (the chosen
response). Every error names the file, line and field.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..feedback.record import RecordError, read_records
from .formats import TRL_ROW, FieldError, is_standard_row, messages as read_messages
from .io import open_rows

CANONICAL_KEYS = {"item_id", "type", "annotator"}


@dataclass
class Conversation:
    """A prompt (earlier turns + the last user turn) and the assistant reply(ies) to it."""
    messages: list[dict]  # ends with the user turn being answered
    response: str
    rejected: str | None = None  # preference data: the response that lost
    # A plain-string TRL row: raw text + eos, no chat template (TRL's "standard" rows).
    raw: bool = False
    # A `messages` row for SFT: every assistant turn of messages + [response] is trained on.
    all_turns: bool = False


@dataclass
class Loaded:
    items: list[Conversation]
    source_format: str
    counts: dict = field(default_factory=dict)
    # What the file's rows were, for the run's ledger record (rlxf.audit.real_facts): the
    # records' types, who they say judged, where the responses came from (feedback/facts.py)
    # and the row shapes read; None where the rows are not feedback records (SFT rows).
    facts: dict | None = None


def _facts(records, fmt: str) -> dict:
    from collections import Counter

    from ..feedback.facts import record_facts
    shapes = Counter(r.provenance.get(TRL_ROW) for r in records if r.provenance.get(TRL_ROW))
    facts = record_facts(records)
    facts["judged_by"] = {s: n for s, n in facts["judged_by"].items() if n}
    if fmt == "trl":  # TRL rows name no judge and no origin: the importer's fill-ins are not facts
        facts["judged_by"] = facts["responses_from"] = None
    return {**facts, "format": fmt, "row_shapes": dict(sorted(shapes.items()))}


def detect_format(path: Path) -> str:
    """"canonical" if the first row is a canonical feedback record, else "trl"."""
    with open_rows(path) as rows:
        for _, row in rows:
            return "canonical" if CANONICAL_KEYS <= set(row) else "trl"
    raise RecordError(f"{path}: no rows")


def check_format(fmt: str) -> None:
    from .formats import FORMATS
    if fmt not in ("auto", "canonical", *FORMATS):
        raise RecordError(f"--format {fmt!r}: unknown; choose auto, canonical or one of "
                          f"{', '.join(FORMATS)}")


def _records(path: Path, fmt: str):
    """(canonical records of the file, its format), converted by `rlxf data import`'s code."""
    from .importer import import_file

    check_format(fmt)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "canonical":
        return read_records(path), fmt
    with tempfile.TemporaryDirectory(prefix="rlxf-prefs-") as tmp:
        converted = Path(tmp) / "records.jsonl"
        import_file(fmt, path, converted)
        return read_records(converted), fmt


def load_preferences(path: Path, fmt: str = "auto") -> Loaded:
    """(prompt, chosen, rejected) per item, by majority of its judgements."""
    from .export import ExportResult, preference_pairs

    records, fmt = _records(path, fmt)
    result = ExportResult(records=len(records))
    items = [Conversation([m.model_dump() for m in first.context]
                          + [{"role": "user", "content": first.prompt}], chosen, rejected,
                          raw=is_standard_row(first.provenance))
             for first, chosen, rejected in preference_pairs(records, path, result)]
    ratings = result.ratings
    if not items:
        raise RecordError(f"{path}: no pairwise preference with a majority ({result.records} "
                          f"records, {result.not_pairwise} neither pairwise nor rating, "
                          f"{result.no_majority} items without a majority, {ratings.ties} rated "
                          f"prompts tied, {ratings.single} with one rated response)")
    counts = {"records": result.records, "items": result.items, "pairs": len(items),
              "not_pairwise": result.not_pairwise, "no_majority": result.no_majority,
              **({"rating_records": ratings.ratings, "rating_pairs": ratings.pairs,
                  "rating_ties_dropped": ratings.ties, "rating_single_dropped": ratings.single}
                 if ratings.ratings else {})}
    return Loaded(items, fmt, counts, _facts(records, fmt))


@dataclass
class Rated:
    """A response and its ratings (aspect -> score) from a rating record."""
    conversation: Conversation
    ratings: dict[str, float]


def load_ratings(path: Path, fmt: str = "auto") -> Loaded:
    """Every rating record of the file (HelpSteer2, UltraFeedback, the annotation app's Likert
    tasks), as `Rated` items; `counts["aspects"]` names the aspects in order of appearance."""
    records, fmt = _records(path, fmt)
    items, aspects = [], {}
    for r in records:
        if r.type != "rating":
            continue
        msgs = [m.model_dump() for m in r.context] + [{"role": "user", "content": r.prompt}]
        items.append(Rated(Conversation(msgs, r.responses[0]), dict(r.ratings or {})))
        aspects.update(dict.fromkeys(r.ratings or {}))
    if not items:
        raise RecordError(f"{path}: no rating records ({len(records)} records of other types); "
                          "--aspects trains on ratings (e.g. --format helpsteer2)")
    return Loaded(items, fmt, {"records": len(records), "rated_responses": len(items),
                               "aspects": list(aspects)}, _facts(records, fmt))


def load_demonstrations(path: Path, fmt: str = "auto") -> Loaded:
    """Prompt + reply per row: TRL prompt/completion, text (every token) or messages rows (every
    assistant turn is trained on), or preference data (the chosen reply)."""
    check_format(fmt)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "trl":
        with open_rows(path) as rows:
            first = next(iter(rows), (0, {}))[1]
        if "chosen" not in first:
            items = _sft_rows(path)
            return Loaded(items, "trl-sft", {}, {"format": "trl-sft",
                                                 "row_shapes": sft_shapes(items)})
    prefs = load_preferences(path, fmt)
    prefs.items = [Conversation(c.messages, c.response, raw=c.raw) for c in prefs.items]
    return prefs


def sft_shapes(items: list[Conversation]) -> dict[str, int]:
    """How many rows of each TRL SFT shape (as _sft_row read them)."""
    from collections import Counter
    shapes = Counter("language modeling (text)" if c.raw and c.messages[-1]["content"] == ""
                     and len(c.messages) == 1 else "prompt-completion (strings)" if c.raw
                     else "conversational (messages)" if c.all_turns
                     else "prompt-completion (messages)" for c in items)
    return dict(sorted(shapes.items()))


def _sft_rows(path: Path) -> list[Conversation]:
    out = []
    with open_rows(path) as rows:
        for n, row in rows:
            try:
                out.append(_sft_row(row))
            except FieldError as e:
                raise RecordError(f"{path} {rows.unit} {n}: {e} (expected TRL SFT data: "
                                  "prompt/completion, text or messages)") from None
    return out


def _sft_row(row: dict) -> Conversation:
    if isinstance(row.get("text"), str) and "prompt" not in row and "messages" not in row:
        # TRL's language-modeling row: every token trained. As an empty raw prompt, the split
        # leaves only the tokenizer's own leading tokens (<s>) untrained -- which no loss can
        # train, as nothing predicts the first token.
        return Conversation([{"role": "user", "content": ""}], row["text"], raw=True)
    if row.get("messages") is not None:
        conv = read_messages(row["messages"], "messages")
        if not conv or conv[-1]["role"] != "assistant":
            raise FieldError("messages", "does not end with an assistant turn")
        if not any(m["role"] == "user" for m in conv[:-1]):
            raise FieldError("messages", "has no user turn before the last assistant turn")
        return Conversation(conv[:-1], conv[-1]["content"], all_turns=True)
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is None or completion is None:
        missing = "prompt" if prompt is None else "completion"
        raise FieldError(missing, "is missing", missing=True)
    if isinstance(prompt, str) and isinstance(completion, str):
        return Conversation([{"role": "user", "content": prompt}], completion, raw=True)
    if isinstance(prompt, list) and isinstance(completion, list):
        head, tail = read_messages(prompt, "prompt"), read_messages(completion, "completion")
        if len(tail) != 1 or tail[0]["role"] != "assistant":
            raise FieldError("completion", "must be one assistant message")
        return Conversation(head, tail[0]["content"])
    raise FieldError("completion", "and prompt must both be strings or both message lists")
