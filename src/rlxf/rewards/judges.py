"""Judges as reward sources:
- `judge:FILE.toml`: the AI judge with a constitution (feedback/ai_judge.py), rating each
  completion 1-5 on the constitution's aspects; the reward is their mean, None when the answer
  did not parse. FILE.toml holds the keys of [feedback.ai] (docs/CONFIG.md): model, base_url or
  local_model, constitution, api_key_env, temperature, workers, max_attempts.
- `gold:RUN_DIR`: the lab world's gold 3H judge of a lab run (world/judge.py), the utility under
  the world's weights, for prompts of that world (matched by the row's `prompt_id` field, else
  by the prompt's text); a prompt the world does not know stops the run naming its row."""

from __future__ import annotations

import tomllib
from pathlib import Path
from statistics import mean

from .batch import RewardBatch, RewardError, messages_of


class AIJudgeReward:
    kind = "ai_judge"

    def __init__(self, path: Path):
        from pydantic import ValidationError

        from ..config import AIJudgeConfig
        from ..feedback.ai_judge import JudgeError, LocalLMJudge, OpenAIJudge
        from ..feedback.constitution import ConstitutionError, load_constitution
        try:
            cfg = AIJudgeConfig.model_validate(tomllib.loads(path.read_text()))
            constitution = load_constitution(cfg.constitution)
            self.judge = (LocalLMJudge(constitution, cfg.local_model) if cfg.local_model else
                          OpenAIJudge(constitution, cfg.model, base_url=cfg.base_url,
                                      api_key_env=cfg.api_key_env, temperature=cfg.temperature,
                                      max_attempts=cfg.max_attempts))
        except FileNotFoundError:
            raise RewardError(f"--reward judge:{path}: no such file") from None
        except (tomllib.TOMLDecodeError, ValidationError, ConstitutionError, JudgeError) as e:
            raise RewardError(f"--reward judge:{path}: {e}") from None
        self.name, self.workers = f"judge:{cfg.model if not cfg.local_model else 'local'}", \
            cfg.workers
        self.stats: dict = {}

    def __call__(self, batch: RewardBatch) -> list[float | None]:
        from ..feedback.ai_judge import RatingItem, judge_ratings
        items = []
        for i, (prompt, reply) in enumerate(zip(batch.prompts, batch.texts)):
            turns = messages_of(prompt)
            items.append(RatingItem(turns[-1]["content"], reply, item_id=f"r{i:06d}",
                                    context=tuple(turns[:-1])))
        records, stats = judge_ratings(self.judge, items, workers=self.workers)
        for k in ("n_requests", "cache_hits", "api_calls", "parse_failures"):
            self.stats[k] = self.stats.get(k, 0) + getattr(stats, k)
        by_item = {r.item_id: mean(r.ratings.values()) for r in records}
        return [by_item.get(f"r{i:06d}") for i in range(len(items))]


class GoldReward:
    kind = "gold"

    def __init__(self, run_dir: Path):
        from ..rundir import RunDir
        from ..world.saved import load_world
        if not (run_dir / "world" / "world.json").exists():
            raise RewardError(f"--reward gold:{run_dir}: not a lab run directory (no "
                              "world/world.json; `rlxf run` writes one)")
        self.world = load_world(RunDir(run_dir))
        self.by_text = {p.text: p for p in self.world.train + self.world.heldout}
        self.name = "gold"

    def _prompt(self, batch: RewardBatch, i: int):
        prompt_id = batch.fields[i].get("prompt_id")
        found = self.world.find_prompt(prompt_id) if prompt_id else \
            self.by_text.get(messages_of(batch.prompts[i])[-1]["content"])
        if found is None:
            raise RewardError(f"--reward gold: {batch.where[i]}: prompt "
                              f"{prompt_id or batch.prompts[i]!r} is not in the lab world")
        return found

    def __call__(self, batch: RewardBatch) -> list[float | None]:
        from ..world.judge import score
        return [score(self._prompt(batch, i), text, self.world.kb).utility(self.world.weights)
                for i, text in enumerate(batch.texts)]
