"""The optimisation loop every policy recipe shares (DPO family, KTO, GRPO, RLOO, PPO): the periodic
gold / proxy / KL evaluation, the learning-rate schedule, gradient clipping, exact checkpoints,
and the step through `accelerate`, so that N processes with the same global batch take the same
step as one.

A recipe supplies `losses(model, step)`: a generator that yields one (loss, metrics) per
optimizer update of that step (DPO: one; GRPO with μ updates per rollout: μ). The loop does the
backward pass and the update between yields, so a recipe that needs the updated parameters (the
next of μ updates) just continues after its `yield`. Code after a recipe's last `yield` runs
before the checkpoint (e.g. the Lagrange multiplier's dual step).

Metrics yielded are means over the process's share of the batch; with equal shares the loop's
mean over processes is the global mean."""

from __future__ import annotations

import time
from typing import Callable, Iterator

import torch
from accelerate import Accelerator

from ..config import PolicyConfig
from .loop import Checkpointer, StepCallback, adamw, lr_at, set_lr

StepLosses = Callable[[torch.nn.Module, int], Iterator[tuple[torch.Tensor, dict]]]


def default_accelerator() -> Accelerator:
    """One process on the CPU unless launched by `accelerate launch` (which sets the process
    group up from its environment). The lab models are tiny: the CPU is the device."""
    return Accelerator(cpu=True)


def shard(indices: list[int], accelerator: Accelerator) -> list[int]:
    """This process's equal share of a global batch of indices."""
    n = accelerator.num_processes
    if len(indices) % n:
        raise ValueError(f"batch of {len(indices)} does not split evenly over {n} processes; "
                         "make [policy] batch_size a multiple of the process count")
    return indices[accelerator.process_index::n]


def global_mean(metrics: dict, accelerator: Accelerator) -> dict:
    """Each value's mean over the processes (equal shares: the global batch's mean)."""
    if accelerator.num_processes == 1 or not metrics:
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64)
    values = accelerator.reduce(values.to(accelerator.device), reduction="mean").cpu()
    return dict(zip(metrics, values.tolist()))


def optimise(policy: torch.nn.Module, cfg: PolicyConfig, ckpt: Checkpointer, losses: StepLosses,
             *, items_per_step: tuple[str, int], on_step: StepCallback | None = None,
             evaluate: Callable[[int], dict] | None = None,
             accelerator: Accelerator | None = None, ema_weight: float = 0.05) -> dict:
    """Run cfg.steps steps of `losses`; returns the smoothed last metrics (exponential moving
    average, `ema_weight` on the newest step), the evaluation
    history and throughput (`items_per_step` = (metric name, items per step), e.g.
    ("throughput/pairs_per_s", batch_size)). `evaluate(step)` runs on the main process every
    cfg.eval_every steps and at 0 and the end; its results form policy/history.json."""
    accelerator = accelerator or default_accelerator()
    optimizer = adamw(policy.parameters(), cfg.lr)
    start = ckpt.load(policy, optimizer)
    model, optimizer = accelerator.prepare(policy, optimizer)
    history: list[dict] = ckpt.extra.setdefault("history", [])
    ema: dict = ckpt.extra.get("ema", {})
    t0 = time.perf_counter()
    for step in range(start, cfg.steps + 1):
        if evaluate and accelerator.is_main_process and \
                (step % cfg.eval_every == 0 or step == cfg.steps) and \
                not any(h["step"] == step for h in history):
            history.append({"step": step, **evaluate(step)})
        if step == cfg.steps:
            break
        model.train()
        set_lr(optimizer, lr_at(step, cfg))
        now: dict = {}
        for loss, now in losses(model, step):
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        now = global_mean(now, accelerator)
        ema = {k: v if k not in ema else (1 - ema_weight) * ema[k] + ema_weight * v
               for k, v in now.items()}
        ckpt.extra["ema"] = ema
        if accelerator.is_main_process:
            ckpt.maybe_save(step + 1, policy, optimizer)
        if on_step:
            on_step(step + 1, ema)
    policy.eval()
    elapsed = time.perf_counter() - t0
    done = cfg.steps - start
    name, per_step = items_per_step
    return {**ema, "steps": cfg.steps, "resumed_from_step": start, "history": history,
            name: done * per_step / elapsed if done else None}
