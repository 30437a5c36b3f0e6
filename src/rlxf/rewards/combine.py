"""`--reward SPEC` (repeatable) and `--reward-weights`: which source each SPEC names, and the
weighted sum the policy maximises.

SPEC forms: `gold:RUN_DIR` (lab gold judge), `judge:FILE.toml` (AI judge), `prm:PATH` (process
reward model: step rewards), `orm:RUN_DIR` (a lab run's outcome reward model), a directory (reward model), `path/file.py:name` or
`package.module:name` (reward function).

Combination follows TRL's GRPOTrainer: reward = Σ_k w_k r_k over the sources that scored the
completion (a None is left out of the sum); a completion no source scored is unscored (NaN),
which the recipes give zero advantage. A process reward model counts there with its outcome
score (the minimum over steps); with one, `Scored.steps` also holds each completion's step
rewards, w·σ(PRM) per step with every other source's w_k r_k added to the last step (an outcome
reward is the reward of the final step), which the recipes credit step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .batch import RewardBatch, RewardError
from .functions import FunctionReward
from .judges import AIJudgeReward, GoldReward
from .process_reward import OutcomeRewardModel, ProcessRewardModel, StepScores
from .reward_model import RewardModelReward


def parse_source(spec: str):
    if spec.startswith("gold:"):
        return GoldReward(Path(spec[len("gold:"):]))
    if spec.startswith("judge:"):
        return AIJudgeReward(Path(spec[len("judge:"):]))
    if spec.startswith("prm:"):
        return ProcessRewardModel(Path(spec[len("prm:"):]))
    if spec.startswith("orm:"):
        return OutcomeRewardModel(Path(spec[len("orm:"):]))
    if Path(spec).is_dir():
        return RewardModelReward(Path(spec))
    if ":" in spec:
        return FunctionReward(spec)
    raise RewardError(f"--reward {spec!r}: not a directory, gold:RUN_DIR, judge:FILE.toml, "
                      "prm:PATH, orm:RUN_DIR, file.py:function or package.module:function")


def parse_weights(text: str | None, n: int) -> list[float]:
    if not text:
        return [1.0] * n
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise RewardError(f"--reward-weights {text!r}: expected numbers separated by commas, "
                          "e.g. 1,0.5") from None
    if len(weights) != n:
        raise RewardError(f"--reward-weights {text!r}: {len(weights)} weights for {n} "
                          "--reward sources (one each, in order)")
    return weights


@dataclass
class Scored:
    total: list[float]                         # NaN where no source scored the completion
    per_source: dict[str, list[float | None]]  # each source's own scores, by name
    steps: list[StepScores] | None = None      # weighted step rewards, with a process source


class RewardSources:
    def __init__(self, specs: list[str], weights: str | None = None):
        if not specs:
            raise RewardError("give at least one --reward SPEC")
        self.specs = list(specs)
        self.sources = [parse_source(s) for s in specs]
        self.weights = parse_weights(weights, len(self.sources))
        if sum(isinstance(s, ProcessRewardModel) for s in self.sources) > 1:
            raise RewardError("--reward: at most one prm: source (two PRMs would split the "
                              "steps of a reply differently)")
        names = [s.name for s in self.sources]
        # the same name twice (two functions `fn` in different files) gets a position suffix
        self.names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]

    def describe(self) -> list[dict]:
        return [{"name": n, "kind": s.kind, "weight": w}
                for n, s, w in zip(self.names, self.sources, self.weights)]

    def __call__(self, batch: RewardBatch) -> Scored:
        per_source, steps, step_weight = {}, None, 0.0
        for name, source, weight in zip(self.names, self.sources, self.weights):
            if isinstance(source, ProcessRewardModel):
                steps, step_weight = source.steps(batch), weight
                per_source[name] = [min(s.rewards) if s.rewards else None for s in steps]
            else:
                per_source[name] = source(batch)
        total = []
        for i in range(len(batch)):
            parts = [w * scores[i] for w, scores in zip(self.weights, per_source.values())
                     if scores[i] is not None]
            total.append(math.fsum(parts) if parts else math.nan)
        if steps is not None:
            steps = [_weighted_steps(s, step_weight, [
                w * scores[i] for src, w, scores in zip(self.sources, self.weights,
                                                        per_source.values())
                if not isinstance(src, ProcessRewardModel) and scores[i] is not None],
                len(text)) for i, (s, text) in enumerate(zip(steps, batch.texts))]
        return Scored(total, per_source, steps)


def _weighted_steps(steps: StepScores, weight: float, outcome_parts: list[float],
                    text_length: int) -> StepScores:
    """w·r per step, the outcome sources' sum added to the last step (or, for a reply with no
    step, a single step spanning the reply)."""
    rewards = [weight * r for r in steps.rewards]
    ends = list(steps.char_ends)
    if outcome_parts:
        if not rewards:
            rewards, ends = [0.0], [text_length]
        rewards[-1] += math.fsum(outcome_parts)
    return StepScores(rewards, ends)
