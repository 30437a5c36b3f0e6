"""What every policy recipe (DPO family, KTO, GRPO, RLOO, PPO) adds to the training engine
(train/engine.py): the periodic gold / proxy / KL evaluation and its history. The loop itself
(device, precision, accumulation, processes, clipping, schedule, checkpoints) is the engine's.

A recipe supplies `losses(model, step)`, a generator that yields one (loss, metrics) per
micro-batch (train/engine.py); metrics yielded are means over the process's share of the batch,
and with equal shares the engine's mean over processes is the global mean."""

from __future__ import annotations

from typing import Callable

import torch
from accelerate import Accelerator

from .engine import Engine, StepLosses, build_accelerator
from .hparams import Optimisation
from .loop import Checkpointer, StepCallback

__all__ = ["StepLosses", "default_accelerator", "global_mean", "optimise", "shard"]


def default_accelerator(cfg: Optimisation | None = None) -> Accelerator:
    """The processes `accelerate launch` set up (one otherwise), on cfg's device and precision
    (default: the launcher's device, fp32)."""
    return build_accelerator(getattr(cfg, "device", "auto"), getattr(cfg, "precision", "fp32"))


def shard(indices: list[int], accelerator: Accelerator) -> list[int]:
    """This process's equal share of a global batch of indices (Engine.shard)."""
    return Engine(None, accelerator).shard(indices)


def global_mean(metrics: dict, accelerator: Accelerator) -> dict:
    """Each value's mean over the processes (Engine.global_mean)."""
    return Engine(None, accelerator).global_mean(metrics)


def optimise(policy: torch.nn.Module, cfg: Optimisation, ckpt: Checkpointer, losses: StepLosses,
             *, items_per_step: tuple[str, int], on_step: StepCallback | None = None,
             evaluate: Callable[[int], dict] | None = None,
             engine: Engine | None = None, ema_weight: float = 0.05) -> dict:
    """Run cfg.steps steps of `losses` in the engine; returns the smoothed last metrics, the
    evaluation history (`evaluate(step)` on the main process every cfg.eval_every steps and at 0
    and the end; policy/history.json) and throughput."""
    engine = engine or Engine(cfg)
    return engine.run(policy, losses, ckpt, items_per_step=items_per_step, on_step=on_step,
                      evaluate=evaluate, ema_weight=ema_weight, history=True)
