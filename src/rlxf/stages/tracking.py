"""Experiment tracking through accelerate's trackers: TensorBoard by default (RUN/tb/, outside
every stage directory so logging never changes a stage's hash), MLflow when asked for and
installed. A stage logs its training metrics every step and every eval point."""

from __future__ import annotations

import math
from typing import Callable

from .context import StageContext

TB_DIR = "tb"  # RUN/tb/<stage-name>/: TensorBoard event files


def _numbers(values: dict) -> dict:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class Tracker:
    def __init__(self, trackers: list):
        self.trackers = trackers

    @classmethod
    def for_stage(cls, ctx: StageContext, name: str) -> "Tracker":
        cfg = ctx.config.tracking
        trackers = []
        if cfg.tensorboard:
            from accelerate.tracking import TensorBoardTracker
            trackers.append(TensorBoardTracker(name, ctx.run.root / TB_DIR))
        if cfg.mlflow:
            from accelerate.utils import is_mlflow_available
            if not is_mlflow_available():
                raise RuntimeError("[tracking] mlflow = true, but mlflow is not installed "
                                   "(pip install mlflow)")
            from accelerate.tracking import MLflowTracker
            trackers.append(MLflowTracker(experiment_name=ctx.run.root.name,
                                          logging_dir=str(ctx.run.root / "mlruns"),
                                          run_name=name))
        for t in trackers:
            t.start()  # accelerate >= 1.2 opens writers here, not in __init__
        return cls(trackers)

    def log(self, values: dict, step: int) -> None:
        values = _numbers(values)
        if values:
            for t in self.trackers:
                t.log(values, step=step)

    def wrap(self, on_step: Callable[[int, dict], None] | None) -> Callable[[int, dict], None]:
        """A step callback that also logs the step's training metrics."""
        def log_and_report(step: int, metrics: dict) -> None:
            self.log({f"train/{k}": v for k, v in metrics.items()}, step)
            if on_step:
                on_step(step, metrics)
        return log_and_report

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        for t in self.trackers:
            t.finish()
