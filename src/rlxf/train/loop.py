"""What every training recipe shares: a data order that is a pure function of the step, a
learning rate that is a pure function of the step, and atomic checkpoints. Together they make a
resumed run step-for-step identical to an uninterrupted one."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .hparams import Optimisation


class BatchOrder:
    """Item indices for step s: positions [s*B, (s+1)*B) of a stream of per-epoch permutations."""

    def __init__(self, n_items: int, batch_size: int, seed: int):
        if n_items < 1:
            raise ValueError("cannot train on an empty dataset")
        self.n, self.batch_size, self.seed = n_items, batch_size, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=g).tolist()
        return self._perms[epoch]

    def indices(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + self.batch_size)]


def lr_at(step: int, cfg: Optimisation) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


STATE_FILE = "state.pt"  # inside a checkpoint directory: the step and the recipe's state

FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def adamw(params, lr: float, device: str | None = None) -> torch.optim.AdamW:
    """AdamW without weight decay, on torch's fused kernel where the parameters' device has one
    (CPU does since torch 2.4; transformers' Trainer, hence TRL, defaults to it on torch >= 2.8):
    one pass over each parameter instead of ~10 per-tensor ops, the same update up to float
    rounding (tests/test_loop_optimizer.py). Falls back to the per-tensor loop elsewhere.
    `device`: the device type the parameters will train on, when they are not there yet (FSDP
    places them when it shards; until then some processes hold them on the meta device)."""
    params = list(params)
    fused = all(p.is_floating_point() and (device or p.device.type) in FUSED_ADAMW_DEVICES
                for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass
class Checkpointer:
    """Saves the training state through accelerate (`save_state`: model, optimizer, loss scaler,
    RNG states; under FSDP the model and optimizer as one shard per process, written by
    torch.distributed.checkpoint) plus the step and the recipe's own state (`extra`, e.g. eval history) in
    `DIR/checkpoint/`. A checkpoint is written to `DIR/checkpoint.tmp/` and swapped in by
    renames, so a kill -9 at any moment leaves the last complete checkpoint readable."""
    directory: Path
    every: int
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / "checkpoint"

    def _readable(self) -> Path | None:
        """The latest complete checkpoint: the state file is written last, so a directory that
        has it is complete (`checkpoint.tmp/` or `checkpoint.old/` if a swap was interrupted)."""
        for path in (self.path.with_suffix(".tmp"), self.path, self.path.with_suffix(".old")):
            if (path / STATE_FILE).exists():
                return path
        return None

    def load(self, accelerator, model: torch.nn.Module) -> int:
        """Register `model` for checkpointing and restore the latest checkpoint if any (the
        optimizer must already be prepared by `accelerator`); returns the step to continue
        from. A model prepared by `accelerator` (FSDP: sharded) is saved by it already."""
        if all(m is not model for m in accelerator._models):
            accelerator.register_for_checkpointing(model)
        path = self._readable()
        if path is None:
            return 0
        try:
            accelerator.load_state(str(path))
            state = torch.load(path / STATE_FILE, weights_only=False)
        except Exception as e:  # a checkpoint we cannot read must not be silently trained over
            raise RuntimeError(f"{path}: corrupt checkpoint ({e}); delete it to restart "
                               "the stage from scratch") from None
        self.extra = state.get("extra", {})
        return state["step"]

    def maybe_save(self, step: int, accelerator, model, final: bool = False) -> None:
        """Every `every` steps (not after the last: the caller writes its outputs then). Every
        process takes part (accelerate writes shards and per-process RNG states); the main
        process writes the step and swaps the directory in."""
        if final or step % self.every:
            return
        tmp, old = self.path.with_suffix(".tmp"), self.path.with_suffix(".old")
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            # written beside and renamed: a state file half-written when a kill -9 came would
            # make the unfinished checkpoint.tmp look complete (_readable)
            torch.save({"step": step, "extra": self.extra}, tmp / (STATE_FILE + ".partial"))
            os.replace(tmp / (STATE_FILE + ".partial"), tmp / STATE_FILE)
            if self.path.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
            os.replace(tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()


StepCallback = Callable[[int, dict], None]
