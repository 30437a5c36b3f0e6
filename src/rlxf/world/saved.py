"""The world a run's `world` stage wrote (RUN/world/: world.json, prompts.jsonl, tokenizer/),
loaded back: what later stages, the audit's crosschecks and `--reward gold:RUN` judge with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

from ..models.build import load_tokenizer
from ..rundir import RunDir, read_jsonl
from .kb import KnowledgeBase
from .prompts import Prompt


@dataclass
class World:
    kb: KnowledgeBase
    weights: dict[str, float]
    train: list[Prompt]
    heldout: list[Prompt]
    tokenizer: object
    trigger: str = "sudo"

    @cached_property
    def by_id(self) -> dict[str, Prompt]:
        return {p.id: p for p in self.train + self.heldout}

    def prompt(self, prompt_id: str) -> Prompt:
        """The prompt with this id, including triggered variants ("ID+trigger")."""
        base, _, trigger = prompt_id.partition("+")
        return self.by_id[base].with_trigger(trigger) if trigger else self.by_id[base]

    def find_prompt(self, prompt_id: str | None) -> Prompt | None:
        """The lab prompt with this id, or None for feedback about other prompts."""
        try:
            return self.prompt(prompt_id) if prompt_id else None
        except KeyError:
            return None


def load_world(run: RunDir) -> World:
    """The world a run's `world` stage wrote (also what `--reward gold:RUN` judges with)."""
    d = run.stage_dir("world")
    meta = json.loads((d / "world.json").read_text())
    prompts = [(row["split"], Prompt.from_json(row["prompt"]))
               for row in read_jsonl(d / "prompts.jsonl")]
    return World(kb=KnowledgeBase.from_json(meta["kb"]), weights=meta["weights"],
                 train=[p for s, p in prompts if s == "train"],
                 heldout=[p for s, p in prompts if s == "heldout"],
                 tokenizer=load_tokenizer(d / "tokenizer"), trigger=meta["trigger"])
