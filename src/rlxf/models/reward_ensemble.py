"""A reward model ensemble: members that differ only in seed (head initialisation and data
order). Their mean is the proxy reward; their standard deviation measures how much the reward
model knows it does not know (epistemic uncertainty), which grows off the training distribution."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev

from ..train import reward as rm
from .build import load_reward_model

MEMBERS_DIR = "members"  # reward/model is member 0; reward/members/1, /2, ... the others


def member_dirs(stage_dir: Path) -> list[Path]:
    extra = sorted((stage_dir / MEMBERS_DIR).glob("*"), key=lambda p: int(p.name))
    return [stage_dir / "model", *extra]


class RewardEnsemble:
    def __init__(self, models: list):
        self.models = models

    @classmethod
    def load(cls, stage_dir: Path) -> "RewardEnsemble":
        return cls([load_reward_model(d) for d in member_dirs(stage_dir)])

    def score(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
              ) -> tuple[list[float], list[float] | None]:
        """(mean reward, standard deviation across members or None for a single model)."""
        per_member = [rm.score(m, prompts, responses, pad_id) for m in self.models]
        if len(per_member) == 1:
            return per_member[0], None
        columns = list(zip(*per_member))
        return [mean(c) for c in columns], [pstdev(c) for c in columns]
