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
    ranking: list[int] | None = Field(None, description="ranking: response indices, best first")
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
            if self.ranking is None or sorted(self.ranking) != list(range(n)):
                raise ValueError(f"ranking must order all {n} response indices, got {self.ranking}")
        elif self.type == "rating" and not self.ratings:
            raise ValueError("rating needs ratings: {aspect: score}")
        elif self.type == "binary" and self.label is None:
            raise ValueError("binary needs label: true or false")
        elif self.type == "edit" and not self.edit:
            raise ValueError("edit needs the edited response in edit")
        elif self.type == "critique" and not self.critique:
            raise ValueError("critique needs critique text")
        return self

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_defaults=True)


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
