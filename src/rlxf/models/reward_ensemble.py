"""A reward model ensemble: members that differ only in seed (head initialisation and data
order). Their mean is the proxy reward; their standard deviation measures how much the reward
model knows it does not know (epistemic uncertainty), which grows off the training distribution.
A policy can be optimised against a conservative reward that trusts the ensemble less where its
members disagree (Coste et al. 2023, "Reward model ensembles help mitigate overoptimization")."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev
from typing import Literal

from .build import load_reward_model
from .reward_scores import score

MEMBERS_DIR = "members"  # reward/model is member 0; reward/members/1, /2, ... the others
Conservative = Literal["mean", "mean_minus_std", "worst_case"]


def member_dirs(stage_dir: Path) -> list[Path]:
    extra = sorted((stage_dir / MEMBERS_DIR).glob("*"), key=lambda p: int(p.name))
    return [stage_dir / "model", *extra]


def conservative_rewards(per_member: list[list[float]], kind: Conservative = "mean_minus_std",
                         lam: float = 1.0) -> list[float]:
    """One reward per response from per_member[m][i] (member m's reward of response i):
    "mean" -- the ensemble mean; "mean_minus_std" -- mean − λ·std (uncertainty-weighted
    optimisation, Coste et al. eq. 4; population std, as `RewardEnsemble.score` reports);
    "worst_case" -- the minimum over members (worst-case optimisation, Coste et al. eq. 3)."""
    if not per_member or any(len(m) != len(per_member[0]) for m in per_member):
        raise ValueError("conservative_rewards: need ≥ 1 member, all scoring the same responses")
    columns = list(zip(*per_member))
    if kind == "mean":
        return [mean(c) for c in columns]
    if kind == "mean_minus_std":
        return [mean(c) - lam * pstdev(c) for c in columns]
    if kind == "worst_case":
        return [min(c) for c in columns]
    raise ValueError(f"conservative_rewards: kind {kind!r}; allowed: mean, mean_minus_std, "
                     "worst_case")


class RewardEnsemble:
    def __init__(self, models: list):
        self.models = models

    @classmethod
    def load(cls, stage_dir: Path) -> "RewardEnsemble":
        return cls([load_reward_model(d) for d in member_dirs(stage_dir)])

    def member_scores(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                      ) -> list[list[float]]:
        """[member][response] rewards."""
        return [score(m, prompts, responses, pad_id) for m in self.models]

    def score(self, prompts: list[list[int]], responses: list[list[int]], pad_id: int
              ) -> tuple[list[float], list[float] | None]:
        """(mean reward, standard deviation across members or None for a single model)."""
        per_member = self.member_scores(prompts, responses, pad_id)
        if len(per_member) == 1:
            return per_member[0], None
        columns = list(zip(*per_member))
        return [mean(c) for c in columns], [pstdev(c) for c in columns]

    def score_conservative(self, prompts: list[list[int]], responses: list[list[int]],
                           pad_id: int, kind: Conservative = "mean_minus_std", lam: float = 1.0
                           ) -> list[float]:
        """Rewards to optimise a policy against when the proxy should not be trusted where the
        members disagree (`conservative_rewards`)."""
        return conservative_rewards(self.member_scores(prompts, responses, pad_id), kind, lam)
