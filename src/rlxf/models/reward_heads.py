"""Reward models with several heads on one backbone: one head per aspect (helpful, harmless,
honest) or one per annotator group. The heads' names (and, for aspects, the weights that
combine them into one reward) are saved beside the model in heads.json, so a later stage loads
them from the run directory alone."""

from __future__ import annotations

import json
from pathlib import Path

from ..rundir import atomic_write_json
from .build import load_reward_model
from .reward_scores import score_heads

HEADS_FILE = "heads.json"
ASPECTS_DIR = "aspects"  # reward/aspects: the multi-objective model (and the cost model)
GROUPS_DIR = "groups"  # reward/groups: the group-conditioned model


class HeadedRewardModel:
    def __init__(self, model, heads: list[str], weights: dict[str, float] | None = None):
        if model.config.num_labels != len(heads):
            raise ValueError(f"{model.config.num_labels} outputs but {len(heads)} head names")
        self.model, self.heads, self.weights = model, list(heads), weights

    def save(self, directory: Path, tokenizer) -> None:
        self.model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        atomic_write_json(directory / HEADS_FILE, {"heads": self.heads, "weights": self.weights})

    @classmethod
    def load(cls, directory: Path):
        meta = json.loads((Path(directory) / HEADS_FILE).read_text())
        return cls(load_reward_model(directory), meta["heads"], meta.get("weights"))

    def score_heads(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                    ) -> dict[str, list[float]]:
        """{head: [reward of each response]}; prompts and responses are token ids."""
        rows = score_heads(self.model, prompts, responses, pad_id)
        return {h: [row[i] for row in rows] for i, h in enumerate(self.heads)}


class AspectRewardModel(HeadedRewardModel):
    """One reward per aspect; `combined` is their weighted sum. The harmless head is the cost
    model of safe RL (cost = −harmless)."""

    def score(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
              ) -> dict[str, list[float]]:
        return self.score_heads(prompts, responses, pad_id)

    def combined(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                 ) -> list[float]:
        per = self.score(prompts, responses, pad_id)
        return [sum(self.weights[a] * per[a][i] for a in self.heads)
                for i in range(len(responses))]


class GroupRewardModel(HeadedRewardModel):
    """One reward per annotator group: the reward that group's own labels teach."""

    def score(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
              group: str) -> list[float]:
        if group not in self.heads:
            raise KeyError(f"group {group!r} has no head; groups: {', '.join(self.heads)}")
        return self.score_heads(prompts, responses, pad_id)[group]


def load_aspect_model(stage_dir: str | Path) -> AspectRewardModel:
    """The multi-objective reward model of a reward stage directory (RUN/reward), trained with
    [reward] aspects = true."""
    path = Path(stage_dir) / ASPECTS_DIR
    if not (path / HEADS_FILE).exists():
        raise FileNotFoundError(f"{path}: no aspect model (run the reward stage with "
                                "[reward] aspects = true)")
    return AspectRewardModel.load(path)


def load_group_model(stage_dir: str | Path) -> GroupRewardModel:
    """The group-conditioned reward model of RUN/reward ([reward] group_conditioned = true)."""
    path = Path(stage_dir) / GROUPS_DIR
    if not (path / HEADS_FILE).exists():
        raise FileNotFoundError(f"{path}: no group-conditioned model (run the reward stage "
                                "with [reward] group_conditioned = true)")
    return GroupRewardModel.load(path)
