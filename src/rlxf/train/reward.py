"""Bradley-Terry reward model: a scalar head on the last token of a causal LM backbone."""

from __future__ import annotations

import time

import torch

from ..config import TrainConfig
from ..models.logprobs import response_batch
from ..models.shared_prefix import pair_hidden
from .losses import reward_model_loss
from .loop import BatchOrder, Checkpointer, StepCallback, lr_at, set_lr

Pair = tuple[list[int], list[int], list[int]]  # prompt ids, chosen ids, rejected ids


def pair_rewards(model, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards, each (B,): the scalar head on each sequence's last token, from
    one forward that runs each prompt once (models/shared_prefix.py)."""
    h = pair_hidden(model.base_model, [p for p, _, _ in pairs], [c for _, c, _ in pairs],
                    [r for _, _, r in pairs], pad_id)
    rewards = model.score(h.last)[:, 0]
    return rewards[: len(pairs)], rewards[len(pairs):]


@torch.no_grad()
def score(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
          batch_size: int = 256) -> list[float]:
    model.eval()
    out: list[float] = []
    for b in range(0, len(prompts), batch_size):
        ids, mask, _ = response_batch(prompts[b: b + batch_size], responses[b: b + batch_size],
                                      pad_id)
        out.extend(model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist())
    return out


def train_reward_model(model, pairs: list[Pair], cfg: TrainConfig, pad_id: int, seed: int,
                       ckpt: Checkpointer, on_step: StepCallback | None = None,
                       center_coefficient: float = 0.0) -> dict:
    """Bradley-Terry training; `center_coefficient` > 0 adds the reward-centring penalty
    (losses.reward_model_loss; TRL's center_rewards_coefficient)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    start = ckpt.load(model, optimizer)
    order = BatchOrder(len(pairs), cfg.batch_size, seed)
    model.train()
    ema = ckpt.extra.get("ema", {})
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        chosen, rejected = pair_rewards(model, [pairs[i] for i in order.indices(step)], pad_id)
        set_lr(optimizer, lr_at(step, cfg))
        loss = reward_model_loss(chosen, rejected, center_coefficient=center_coefficient)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        now = {"loss/reward": loss.item(),
               "accuracy/train": (chosen > rejected).float().mean().item()}
        ema = {k: v if k not in ema else 0.95 * ema[k] + 0.05 * v for k, v in now.items()}
        ckpt.extra["ema"] = ema
        ckpt.maybe_save(step + 1, model, optimizer, final=step + 1 == cfg.steps)
        if on_step:
            on_step(step + 1, ema)
    model.eval()
    elapsed = time.perf_counter() - t0
    done = cfg.steps - start
    return {**ema, "steps": cfg.steps, "resumed_from_step": start,
            "throughput/pairs_per_s": done * cfg.batch_size / elapsed if done else None}
