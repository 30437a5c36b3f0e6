"""The canonical feedback record: one JSON object per judgement, one line per record (JSONL).

Every source writes it -- simulated annotators, the AI judge, the annotation web app, the dataset
importers -- and every consumer reads it, so a reward model does not care where feedback came from.
docs/FEEDBACK.md describes it; `feedback_record.schema.json` is the same contract as a JSON Schema
(generated from this model by `python -m rlxf.feedback.record`).

One record is one annotator's judgement of one item. Several annotators judging the same
responses share an `item_id`, so agreement can be measured and disagreement is never lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FeedbackType = Literal["pairwise", "ranking", "rating", "binary", "edit", "critique"]
Source = Literal["human", "simulated", "ai"]
SCHEMA_PATH = Path(__file__).with_name("feedback_record.schema.json")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class Annotator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="pseudonymous annotator id (never a name or e-mail)")
    group: str | None = Field(None, description="the annotator's group, for per-group analysis")


class Adjudication(BaseModel):
    """A curator's decision of an item's final label (the annotation app's review queue)."""
    model_config = ConfigDict(extra="forbid")
    by: str = Field(description="pseudonymous id of the curator who decided")
    method: Literal["accepted", "set"] = Field(
        description="accepted: one annotator's label taken as final; set: the curator's own")
    accepted_from: str | None = Field(None, description="accepted: whose label it was")
    reason: str | None = Field(None, description="why the item was reviewed: disagreement, "
                                                 "failed gold, ...")
    note: str | None = Field(None, description="the curator's note")
    decided: str | None = Field(None, description="ISO 8601 time of the decision")


class FeedbackRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="unique id of this judgement")
    item_id: str = Field(description="id of the judged item; shared by overlapping judgements")
    type: FeedbackType
    prompt: str = Field(description="the last user turn (or the whole prompt as plain text)")
    context: list[Message] = Field(default_factory=list,
                                   description="earlier turns of a conversation, oldest first")
    prompt_id: str | None = Field(None, description="the task's prompt id, when it has one")
    responses: list[str] = Field(min_length=1, description="the judged responses")
    choice: int | None = Field(None, description="pairwise: index of the preferred response; "
                                                 "null with tie=true for a tie")
    tie: bool = Field(False, description="pairwise: the annotator saw no difference")
    strength: float | None = Field(None, description="pairwise: how strong the preference is "
                                                     "(scale given in provenance)")
    ranking: list[int] | None = Field(None, description="ranking: response indices, best first; "
                                                 "a prefix (top-k) leaves the rest unranked, "
                                                 "below every listed one")
    ties: list[list[int]] | None = Field(None, description="ranking: groups of tied responses, "
                                                          "each a run of consecutive entries "
                                                          "of ranking")
    ratings: dict[str, float] | None = Field(None, description="rating: score per aspect "
                                                               "(e.g. helpful, harmless, honest)")
    label: bool | None = Field(None, description="binary: true = good response (KTO-style)")
    edit: str | None = Field(None, description="edit: the corrected response (a demonstration)")
    critique: str | None = Field(None, description="free-text critique of the response(s)")
    annotator: Annotator
    source: Source
    created: str | None = Field(None, description="ISO 8601 time of the judgement, if known")
    provenance: dict = Field(default_factory=dict,
                             description="where it came from: dataset, file, line, model, ...")
    adjudication: Adjudication | None = Field(
        None, description="set on the item's final label decided by a curator; such a record "
                          "is the item's label, not one more annotator's vote")

    @model_validator(mode="after")
    def _fields_match_type(self) -> "FeedbackRecord":
        n = len(self.responses)
        if self.type == "pairwise":
            if n != 2:
                raise ValueError(f"pairwise needs 2 responses, got {n}")
            if self.tie != (self.choice is None):
                raise ValueError("pairwise needs choice 0 or 1, or tie=true with choice null")
            if self.choice not in (None, 0, 1):
                raise ValueError(f"choice must be 0 or 1, got {self.choice}")
        elif self.type == "ranking":
            check_ranking(self.ranking, self.ties, n)
        elif self.type == "rating" and not self.ratings:
            raise ValueError("rating needs ratings: {aspect: score}")
        if self.ties is not None and self.type != "ranking":
            raise ValueError("ties belong to a ranking")
        if self.type == "binary" and self.label is None:
            raise ValueError("binary needs label: true or false")
        elif self.type == "edit" and not self.edit:
            raise ValueError("edit needs the edited response in edit")
        elif self.type == "critique" and not self.critique:
            raise ValueError("critique needs critique text")
        return self

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_defaults=True)

    def ranking_levels(self) -> list[int]:
        """Each response's tier in a ranking record, 0 the best: tied responses share one,
        responses a top-k ranking leaves out share the last."""
        tier_of, level = {}, 0
        groups = {i: g for g in self.ties or [] for i in g}
        for i in self.ranking or []:
            if i in tier_of:
                continue
            for j in groups.get(i, [i]):
                tier_of[j] = level
            level += 1
        return [tier_of.get(i, level) for i in range(len(self.responses))]


def check_ranking(ranking: list[int] | None, ties: list[list[int]] | None, n: int) -> None:
    """ValueError unless `ranking` lists distinct response indices of n (all, or the top k
    >= 1) and every group of `ties` is a run of two or more consecutive entries of it."""
    if not ranking or len(set(ranking)) != len(ranking) or not set(ranking) <= set(range(n)):
        raise ValueError(f"ranking must list distinct response indices 0..{n - 1}, best first "
                         f"(all of them, or the top k), got {ranking}")
    where = {i: k for k, i in enumerate(ranking)}
    seen: set[int] = set()
    for group in ties or []:
        pos = sorted(where.get(i, -1) for i in group)
        if (len(group) < 2 or pos[0] < 0 or pos != list(range(pos[0], pos[0] + len(group)))
                or seen & set(group)):
            raise ValueError(f"each tie must be 2 or more consecutive entries of the ranking "
                             f"{ranking}, in no other tie; got {group}")
        seen |= set(group)


class RecordError(ValueError):
    pass


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    return f'"{loc}": {err["msg"]}'


def read_records(path: str | Path, refuse=None) -> list[FeedbackRecord]:
    """All records of a JSONL file; the first bad one raises RecordError naming file, line
    and field. `refuse(obj)`: an extra check of each parsed line, returning why it is refused
    (or None)."""
    path = Path(path)
    records = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                why = refuse(obj) if refuse else None
                if why:
                    raise RecordError(f"{path} line {i}: {why}")
                records.append(FeedbackRecord.model_validate(obj))
            except json.JSONDecodeError as e:
                raise RecordError(f"{path} line {i}: not valid JSON ({e.msg})") from None
            except ValidationError as e:
                raise RecordError(f"{path} line {i}: "
                                  + "; ".join(_describe(x) for x in e.errors())) from None
    return records


if __name__ == "__main__":
    print(json.dumps(FeedbackRecord.model_json_schema(), indent=2, sort_keys=True))
