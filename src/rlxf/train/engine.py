"""The training engine: the one loop every trainer runs in (pretraining, SFT, reward models,
outcome / process reward models, the DPO family, KTO, GRPO / RLOO, PPO). What differs between
recipes is only the loss generator; the device, mixed precision, gradient accumulation, gradient
synchronisation across processes, clipping, the learning-rate schedule, checkpoints and metrics
live here, once.

A recipe supplies `losses(model, step)`: a generator that yields one (loss, metrics) per
micro-batch. Every `grad_accum` yields make one optimizer update (GRPO with μ updates per
rollout yields μ·grad_accum times). The engine runs the backward pass of each yield and, after
the last micro-batch of an update, averages gradients over processes, clips and steps, so a
recipe that needs the updated parameters (the next of μ updates) just continues after its
`yield`. Code after a recipe's last `yield` runs before the checkpoint.

Each yielded loss must already carry its micro-batch's weight, so that the sum over one update's
micro-batches, averaged over processes, is the loss of the whole global batch: for a loss that is
a mean over items, `loss * engine.item_weight`; for a token mean, the sum over the micro-batch's
tokens divided by `engine.global_sum(tokens)` times `engine.num_processes` (train/lm.py). Then N
processes × K micro-batches take the same step as one process with the whole batch
(tests/test_engine.py, float64).

Gradients are averaged once per update by one all-reduce over the flattened gradients rather than
by DistributedDataParallel: recipes call parts of the model directly (the shared-prefix forward,
the reward model's last layer), which DDP's forward hook would not see, and one reduction per
update (not per micro-batch) is what accumulation wants anyway.

Under an FSDP launch (accelerate's FSDP plugin, version 2) the engine shards instead: the model
and optimizer go through `accelerator.prepare` (`fully_shard` per transformer block), FSDP
reduce-scatters the gradients in each backward (averaged over processes, as the all-reduce
above), checkpoints are accelerate's sharded ones (torch.distributed.checkpoint, one shard per
process), and `full_state_dict` gathers the trained weights for the main process to save.
Recipes see `fully_sharded(model)` (models/batching.py) and run the model's own forward, since
FSDP gathers a block's parameters only in its forward hooks. Only `FSDP_RECIPES` are allowed:
the others call parts of the model directly, or evaluate on the main process alone (not
checked under FSDP yet)."""

from __future__ import annotations

import os
import time
from typing import Callable, Iterator

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

from .loop import Checkpointer, StepCallback, adamw, lr_at, set_lr

StepLosses = Callable[[torch.nn.Module, int], Iterator[tuple[torch.Tensor, dict]]]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
# accelerate modes that own the model (ZeRO, Megatron, XLA): the engine does not run them
UNSUPPORTED = ("DEEPSPEED", "MEGATRON_LM", "XLA")
# the recipes tested under FSDP (tests/test_fsdp.py); the others are refused there
FSDP_RECIPES = ("sft", "reward", "dpo")


class UnsupportedLaunch(ValueError):
    """accelerate launched a mode (or a recipe under it) that the engine does not run."""


def resolve_device(choice: str = "auto") -> str:
    """"auto": CUDA when present (under `accelerate launch`, the process's own GPU), else the
    CPU; anything else is taken as asked ("cpu", "cuda")."""
    if choice != "auto":
        return choice
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(choice: str, device: str) -> str:
    """"auto": bf16 where the device runs it fast (a CUDA GPU with bf16 support), else fp32.
    On the CPU bf16 is allowed when asked for, but auto does not pick it: most CPUs emulate it."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision {choice!r}: expected one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def build_accelerator(device: str = "auto", precision: str = "fp32") -> Accelerator:
    """The Accelerator for one training run: the processes `accelerate launch` set up (one when
    not launched), on `device`, with `precision` as accelerate's mixed precision (autocast; the
    parameters and optimizer stay fp32; fp16 adds a loss scaler)."""
    device = resolve_device(device)
    mixed = ACCELERATE_PRECISION[resolve_precision(precision, device)]
    state = AcceleratorState._shared_state
    if state and (state.get("_mixed_precision") != mixed or
                  (device == "cpu") != (getattr(state.get("device"), "type", "cpu") == "cpu")):
        # another run in this process chose differently; the process group itself is kept
        AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed)
    _fsdp_on_cpu(accelerator)
    return accelerator


def _launched_fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _fsdp_on_cpu(accelerator: Accelerator) -> None:
    """accelerate runs FSDP on accelerators only: on the CPU it sets up a gloo group
    (MULTI_CPU) and silently drops the FSDP plugin the launch configured, which would train
    whole replicas. FSDP2 runs on CPU tensors over gloo, so the launch's plugin is put back."""
    if accelerator.distributed_type != DistributedType.MULTI_CPU or not _launched_fsdp():
        return
    plugin = FullyShardedDataParallelPlugin()  # from the launch's FSDP_* environment
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    # as accelerate does: each AcceleratorState() re-reads the type from the PartialState
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def _mean(rows: list[dict]) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[-1] if all(k in r for r in rows)}


class Engine:
    """One training run's processes, device, precision and accumulation (from `cfg`'s
    `device`, `precision`, `grad_accum`), and the loop (`run`). `recipe` names the trainer,
    so that an FSDP launch of one not in FSDP_RECIPES stops before anything is written."""

    def __init__(self, cfg, accelerator: Accelerator | None = None, max_grad_norm: float = 1.0,
                 recipe: str | None = None):
        self.cfg, self.recipe = cfg, recipe
        self.grad_accum = getattr(cfg, "grad_accum", 1)
        self.accelerator = accelerator or build_accelerator(getattr(cfg, "device", "auto"),
                                                            getattr(cfg, "precision", "fp32"))
        kind = self.accelerator.distributed_type.value
        if kind in UNSUPPORTED:
            raise UnsupportedLaunch(
                f"accelerate launched {kind}, which rlxf's engine does not run; launch DDP "
                "(--multi_gpu or examples/accelerate/ddp_2gpu.yaml) or FSDP2 for sft, reward, dpo "
                "(examples/accelerate/fsdp.yaml) instead (docs/SCALE.md)")
        self.sharded = kind == "FSDP"
        if self.sharded and self.accelerator.state.fsdp_plugin.fsdp_version != 2:
            raise UnsupportedLaunch("accelerate launched FSDP version 1; rlxf's engine runs "
                                    "FSDP2 only (fsdp_version: 2 in the launch config)")
        if recipe is not None:
            self._check_shardable()
        self.max_grad_norm = max_grad_norm
        self.items = 0  # counted by the recipe (tokens) or per step (items_per_step)

    def _check_shardable(self) -> None:
        if self.sharded and self.recipe not in FSDP_RECIPES:
            names = f"{', '.join(FSDP_RECIPES[:-1])} and {FSDP_RECIPES[-1]}"
            raise UnsupportedLaunch(
                f"FSDP is supported for {names}; got {self.recipe or 'another trainer'} (launch "
                "it with DDP: --multi_gpu or examples/accelerate/ddp_2gpu.yaml; docs/SCALE.md)")

    # --- what recipes use ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def item_weight(self) -> float:
        """The weight of a micro-batch's mean loss (equal micro-batches)."""
        return 1.0 / self.grad_accum

    def shard(self, indices: list) -> list:
        """This process's equal share of a global batch."""
        n = self.num_processes
        if len(indices) % n:
            raise ValueError(f"batch of {len(indices)} does not split evenly over {n} processes; "
                             "make batch_size a multiple of the process count")
        return indices[self.process_index::n]

    def micro_batches(self, indices: list) -> list[list]:
        """This process's share of a global batch, in `grad_accum` equal micro-batches."""
        share, k = self.shard(indices), self.grad_accum
        if len(share) % k:
            raise ValueError(f"batch of {len(indices)} over {self.num_processes} process(es) "
                             f"does not split into grad_accum = {k} equal micro-batches; make "
                             "batch_size a multiple of processes x grad_accum")
        size = len(share) // k
        return [share[i * size: (i + 1) * size] for i in range(k)]

    def global_sum(self, value: float) -> float:
        if self.num_processes == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(t, reduction="sum").item()

    def global_mean(self, metrics: dict) -> dict:
        """Each value's mean over the processes (equal shares: the global batch's mean)."""
        if self.num_processes == 1 or not metrics:
            return metrics
        values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=self.device)
        values = self.accelerator.reduce(values, reduction="mean").cpu()
        return dict(zip(metrics, values.tolist()))

    # --- the loop -----------------------------------------------------------------------------
    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.num_processes == 1 or self.sharded:  # FSDP reduce-scattered them in backward
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.num_processes
        at = 0
        for g in grads:
            g.copy_(flat[at: at + g.numel()].view_as(g))
            at += g.numel()

    def _update(self, model, params, optimizer) -> None:
        self._average_gradients(params)
        self.accelerator.clip_grad_norm_(params, self.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def run(self, model: torch.nn.Module, losses: StepLosses, ckpt: Checkpointer, *,
            items_per_step: tuple[str, int | None], on_step: StepCallback | None = None,
            evaluate: Callable[[int], dict] | None = None, ema_weight: float = 0.05,
            history: bool = False) -> dict:
        """cfg.steps steps of `losses`; returns the smoothed last metrics (exponential moving
        average, `ema_weight` on the newest step), the throughput (`items_per_step` = (metric
        name, items per step, or None when the recipe counts `engine.items` itself)) and with
        `history` the evaluations: `evaluate(step)` runs on the main process every
        cfg.eval_every steps and at 0 and the end."""
        cfg, acc = self.cfg, self.accelerator
        self._check_shardable()
        if self.sharded and evaluate:
            raise UnsupportedLaunch("evaluation during training (the lab's policy stage) runs "
                                    "on the main process alone, which FSDP cannot; launch DDP")
        if not self.sharded:  # fully_shard places the shards (and FSDP's memory-efficient
            model.to(acc.device)  # loading leaves other processes' weights on meta until then)
        # one run's objects: an Accelerator reused across runs (tests, a stage's members)
        # must not save or restore the previous run's optimizer and model
        acc.free_memory()
        acc._custom_objects.clear()
        params = [p for p in model.parameters() if p.requires_grad]
        if self.sharded:  # fully_shard swaps the parameters: the optimizer's are remapped
            model, optimizer = acc.prepare(model, adamw(params, cfg.lr, acc.device.type))
            params = [p for p in model.parameters() if p.requires_grad]
        else:
            optimizer = acc.prepare_optimizer(adamw(params, cfg.lr))
        start = ckpt.load(acc, model)
        evals: list[dict] = ckpt.extra.setdefault("history", []) if history else []
        ema: dict = ckpt.extra.get("ema", {})
        name, per_step = items_per_step
        t0 = time.perf_counter()
        for step in range(start, cfg.steps + 1):
            if evaluate and acc.is_main_process and \
                    (step % cfg.eval_every == 0 or step == cfg.steps) and \
                    not any(h["step"] == step for h in evals):
                evals.append({"step": step, **evaluate(step)})
            if step == cfg.steps:
                break
            model.train()
            set_lr(optimizer, lr_at(step, cfg))
            optimizer.zero_grad(set_to_none=True)
            now, micro = self._step(model, params, optimizer, losses(model, step))
            if micro % self.grad_accum:
                raise ValueError(f"the recipe yielded {micro} micro-batches at step {step}, not "
                                 f"a multiple of grad_accum = {self.grad_accum}")
            now = self.global_mean(now)
            ema = {k: v if k not in ema else (1 - ema_weight) * ema[k] + ema_weight * v
                   for k, v in now.items()}
            ckpt.extra["ema"] = ema
            self.items += per_step or 0
            ckpt.maybe_save(step + 1, acc, model, final=step + 1 == cfg.steps)
            if on_step:
                on_step(step + 1, ema)
        model.eval()
        elapsed = time.perf_counter() - t0
        done = cfg.steps - start
        out = {**ema, "steps": cfg.steps, "resumed_from_step": start,
               name: self.items / elapsed if done and elapsed > 0 else None}
        return {**out, "history": evals} if history else out

    def full_state_dict(self, model: torch.nn.Module) -> dict | None:
        """Under FSDP, the trained model's whole state dict on the main process ({} on the
        others; every process must call it: the shards are gathered); None when not sharded
        (the model itself holds its whole parameters)."""
        if not self.sharded:
            return None
        return self.accelerator.get_state_dict(model)

    def _step(self, model, params, optimizer, micro_losses) -> tuple[dict, int]:
        """Drive one step's generator: forward under autocast (the recipe runs inside `next`),
        backward per micro-batch, an update every grad_accum micro-batches. Returns the last
        update's metrics (mean over its micro-batches) and the number of micro-batches."""
        acc, rows, now, micro = self.accelerator, [], {}, 0
        while True:
            with acc.autocast():
                item = next(micro_losses, None)
            if item is None:
                return now, micro
            loss, metrics = item
            acc.backward(loss)
            rows.append(metrics)
            micro += 1
            if micro % self.grad_accum == 0:
                self._update(model, params, optimizer)
                now, rows = _mean(rows), []
