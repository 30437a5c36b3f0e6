"""What a stage gets: its config, where to write, where to checkpoint, how to show progress,
and loaders for the artifacts of earlier stages."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..rundir import RunDir
from ..world.saved import World, load_world

# (description, total steps) -> callback(step, metrics)
ProgressFactory = Callable[[str, int], Callable[[int, dict], None]]


@dataclass
class StageContext:
    run: RunDir
    config: RunConfig
    out: Path
    ckpt: Path
    progress: ProgressFactory

    @property
    def seed(self) -> int:
        return self.config.seed

    def rng(self, stage: str) -> random.Random:
        """A stage's own random stream, independent of the order stages run in."""
        return random.Random(f"{self.seed}:{stage}")

    def load_world(self) -> World:
        return load_world(self.run)

    def model_dir(self, stage: str) -> Path:
        return self.run.stage_dir(stage) / "model"
