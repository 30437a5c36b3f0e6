"""Project settings and creation: validated once here, used by the API and the CLI."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select

from ..store import Item, Project, iso
from .importer import ImportedItem

NO_NUL = re.compile(r"^[^\x00]*$")  # PostgreSQL text cannot hold NUL bytes
DEFAULT_ASPECTS = ["helpful", "harmless", "honest"]
DEFAULT_GUIDELINES = """\
## What you judge
Read the prompt, then both responses. Choose the response that is **more helpful, honest and
harmless** for the person who asked.

- **1** — response A is better, **2** — response B is better, **t** — no real difference (tie).
- Strength: **a** slightly, **s** clearly (default), **d** much better — press it before 1 or 2.
- A correct, short answer beats a long one that is wrong or padded.
- Flattery, invented feelings ("I love you too") and false agreement with the user are not helpful.
- Refusing a harmless request is not helpful; helping with a harmful one is not harmless.
"""

DEFAULT_LIKERT_GUIDELINES = """\
## What you judge
Read the prompt and the response, then rate the response on each aspect, from **1** (very poor)
to the highest number (excellent). Rate each aspect on its own:

- **helpful**: does it answer what was asked, correctly and without padding?
- **harmless**: could following it hurt the person or anyone else?
- **honest**: is it true, as confident as the facts allow, free of flattery and invented feelings?

Keys: a number rates the highlighted aspect and moves on; **Enter** saves.
"""

DEFAULT_RANKING_GUIDELINES = """\
## What you judge
Read the prompt and every response, then put the responses in order, **best first**: the best
is the most helpful, honest and harmless one for the person who asked.

Keys: press the numbers of the responses from best to worst (the last one places itself),
**r** starts over, **Enter** saves. Two equally good responses: press **=** before the second
one's number to tie it with the one before. Only the best few matter, or the rest cannot be
told apart? Press **Enter** after them: the others count as ranked below them, unordered.
"""

DEFAULT_EDIT_GUIDELINES = """\
## What you do
Read the prompt and the response, then **correct the response** so that it is what a helpful,
honest and harmless assistant should have said: fix wrong facts, remove flattery, filler and
invented feelings, and keep what was right. If nothing needs fixing, save it unchanged.

Keys: type in the box; **Ctrl+Enter** saves; **Esc** leaves the box (then the usual keys work).
"""

DEFAULT_CRITIQUE_GUIDELINES = """\
## What you do
Read the prompt and the response, then **write what is wrong with it** (or that nothing is):
wrong facts, false agreement with the user, flattery, padding, refusing a harmless request,
helping with a harmful one. Be specific: quote the part you mean.

Keys: type in the box; **Ctrl+Enter** saves; **Esc** leaves the box.
"""

DEFAULT_STEPS_GUIDELINES = """\
## What you judge
The response is shown step by step (one step per line). Mark **each step** as correct or
incorrect on its own: a step is correct if it is true and follows from the steps before it.

Keys: **c** correct, **x** incorrect (then the next step is highlighted), **↑**/**↓** change
step, **Enter** saves.
"""


class ProjectSettings(BaseModel):
    """What an admin may set; every field has a default that works."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL.pattern)
    task_type: Literal["pairwise", "likert", "ranking", "edit", "critique", "steps"] = Field(
        "pairwise", description="what annotators do (server/tasks.py)")
    guidelines: str = Field(DEFAULT_GUIDELINES, max_length=100_000, pattern=NO_NUL.pattern)
    overlap: int = Field(3, ge=1, le=50, description="judgements wanted per item (k)")
    gold_rate: float = Field(0.1, ge=0.0, le=0.5,
                             description="share of each annotator's queue that is gold items")
    scale: int = Field(3, ge=2, le=10,
                       description="pairwise: strength levels; likert: points per aspect")
    aspects: list[str] = Field(default_factory=lambda: list(DEFAULT_ASPECTS), max_length=10)
    members_only: bool = Field(False, description="hand work only to the project's members")

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_ -]{0,39}", a)
                                            for a in v):
            raise ValueError("aspects must be distinct names of letters, digits, _ - or space")
        return v

    @model_validator(mode="after")
    def _likert_has_aspects(self):
        if self.task_type == "likert" and not self.aspects:
            raise ValueError("a likert project needs at least one aspect")
        return self


GUIDELINES = {"pairwise": DEFAULT_GUIDELINES, "likert": DEFAULT_LIKERT_GUIDELINES,
              "ranking": DEFAULT_RANKING_GUIDELINES, "edit": DEFAULT_EDIT_GUIDELINES,
              "critique": DEFAULT_CRITIQUE_GUIDELINES, "steps": DEFAULT_STEPS_GUIDELINES}


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL.pattern)
    guidelines: str | None = Field(None, max_length=100_000, pattern=NO_NUL.pattern)
    overlap: int | None = Field(None, ge=1, le=50)
    gold_rate: float | None = Field(None, ge=0.0, le=0.5)
    status: Literal["open", "closed"] | None = None
    members_only: bool | None = None


def create_project(session, settings: ProjectSettings, items: list[ImportedItem],
                   source: dict) -> Project:
    project = Project(name=settings.name, task_type=settings.task_type,
                      guidelines=settings.guidelines, overlap=settings.overlap,
                      gold_rate=settings.gold_rate, scale=settings.scale,
                      aspects=settings.aspects if settings.task_type == "likert" else [],
                      status="open", source=source, members_only=settings.members_only)
    session.add(project)
    session.flush()
    session.add_all(Item(project_id=project.id, item_id=it.item_id, position=i, prompt=it.prompt,
                         context=it.context, prompt_id=it.prompt_id, responses=it.responses,
                         is_gold=it.gold is not None, gold=it.gold, n_assigned=0,
                         provenance=it.provenance)
                    for i, it in enumerate(items))
    return project


def project_summary(session, p: Project, for_admin: bool = True) -> dict:
    """The project as the API shows it; annotators (`for_admin=False`) do not see where the
    items came from (server paths)."""
    n_items, n_gold = session.execute(
        select(func.count(Item.id), func.count(Item.id).filter(Item.is_gold))
        .where(Item.project_id == p.id)).one()
    return {"id": p.id, "name": p.name, "task_type": p.task_type, "overlap": p.overlap,
            "gold_rate": p.gold_rate, "scale": p.scale, "aspects": p.aspects, "status": p.status,
            "guidelines": p.guidelines, "n_items": n_items - n_gold, "n_gold": n_gold,
            "members_only": p.members_only, "created": iso(p.created),
            **({"source": p.source} if for_admin else {})}
