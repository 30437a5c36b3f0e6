"""Direct Preference Optimisation (Rafailov et al. 2023) against a frozen reference whose
log-probs are computed once, before training (the reference never changes)."""

from __future__ import annotations

import time
from typing import Callable

import torch

from ..config import PolicyConfig
from ..models.fused_ops import fuse_activations
from ..models.logprobs import response_batch, sequence_logprobs
from ..models.shared_prefix import applies_to, pair_response_logprobs
from .losses import dpo_loss
from .loop import (BatchOrder, Checkpointer, StepCallback, loop_summary, lr_at, record_eval,
                   set_lr)
from .reward import Pair


def pair_logprobs(model, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed response log-probs, each (B,), from one forward that runs each
    prompt once (models/shared_prefix.py)."""
    prompts, chosen, rejected = ([t[k] for t in pairs] for k in range(3))
    if applies_to(model):
        logps = pair_response_logprobs(model, prompts, chosen, rejected, pad_id)
    else:
        ids, mask, resp = response_batch(prompts * 2, chosen + rejected, pad_id)
        logps = sequence_logprobs(model, ids, mask, resp)
    return logps[: len(pairs)], logps[len(pairs):]


@torch.no_grad()
def reference_logprobs(model, pairs: list[Pair], pad_id: int, batch_size: int = 128):
    model.eval()
    chosen, rejected = [], []
    for b in range(0, len(pairs), batch_size):
        c, r = pair_logprobs(model, pairs[b: b + batch_size], pad_id)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


def train_dpo(policy, pairs: list[Pair], ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
              cfg: PolicyConfig, pad_id: int, seed: int, ckpt: Checkpointer,
              on_step: StepCallback | None = None,
              evaluate: Callable[[int], dict] | None = None) -> dict:
    """`evaluate(step)` is called every cfg.eval_every steps (and at 0 and the end); its
    results form the history that the over-optimisation curve is drawn from."""
    fuse_activations(policy)  # same function, one kernel (models/fused_ops.py)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    start = ckpt.load(policy, optimizer)
    history: list[dict] = ckpt.extra.setdefault("history", [])
    order = BatchOrder(len(pairs), cfg.batch_size, seed)
    ema: dict = ckpt.extra.get("ema", {})
    t0 = time.perf_counter()
    for step in range(start, cfg.steps + 1):
        record_eval(evaluate, step, cfg, history)
        if step == cfg.steps:
            break
        policy.train()
        idx = order.indices(step)
        chosen, rejected = pair_logprobs(policy, [pairs[i] for i in idx], pad_id)
        set_lr(optimizer, lr_at(step, cfg))
        loss, r_c, r_r = dpo_loss(chosen, rejected, ref_chosen[idx], ref_rejected[idx], cfg.beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        now = {"loss/dpo": loss.item(), "rewards/margin": (r_c - r_r).mean().item(),
               "rewards/accuracy": (r_c > r_r).float().mean().item()}
        ema = {k: v if k not in ema else 0.95 * ema[k] + 0.05 * v for k, v in now.items()}
        ckpt.extra["ema"] = ema
        ckpt.maybe_save(step + 1, policy, optimizer)
        if on_step:
            on_step(step + 1, ema)
    policy.eval()
    return {**ema, **loop_summary(start, cfg, time.perf_counter() - t0, history, "pairs")}
