"""Reward models: scalar (or multi-output) heads on the last token of a causal LM backbone,
trained on pairs (Bradley-Terry), k-wise rankings (Plackett-Luce), or pairs that name the head
they train (one head per aspect or per annotator group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForSequenceClassification

from ..models.batching import device_of
from ..models.build import load_reward_model
from ..models.fused_ops import fuse_activations
from ..models.last_layer import pair_last_hidden
from ..models.reward_scores import at_least_fp32, head_rewards
from ..models.shared_prefix import applies_to
from ..rundir import atomic_write_json
from .engine import Engine
from .hparams import Optimisation, RewardHparams
from .losses import (bradley_terry_loss, plackett_luce_loss, plackett_luce_weak_order_loss,
                     reward_model_loss)
from .loop import BatchOrder, Checkpointer, StepCallback
from .pair_packing import pack_for, packed_pair_last_hidden

Pair = tuple[list[int], list[int], list[int]]  # prompt ids, chosen ids, rejected ids
Ranking = tuple[list[int], list[list[int]]]  # prompt ids, response ids best first (k ≥ 2)
# partial (top-k) or tied: prompt ids, response ids best first, each response's level (0 best;
# equal levels tied, the unranked tail of a top-k ranking on the last level)
WeakRanking = tuple[list[int], list[list[int]], list[int]]
HeadPair = tuple[int, list[int], list[int], list[int]]  # head index, prompt, chosen, rejected
# (model, batch of examples, pad id) -> (loss, share of the batch ranked right)
BatchLoss = Callable[[object, list, int], tuple[torch.Tensor, torch.Tensor]]


def pair_rewards(model, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards, each (B,): the scalar head on each sequence's last token, from
    one forward that runs each prompt once (padding-free on the CPU: train/pair_packing.py; else
    models/shared_prefix.py) and the last layer only where the head reads it
    (models/last_layer.py)."""
    prompts, chosen, rejected = ([t[k] for t in pairs] for k in range(3))
    packed = pack_for(model, prompts, chosen, rejected, pad_id)
    if packed is not None:
        rewards = at_least_fp32(model.score(packed_pair_last_hidden(model, packed))[:, 0])
    elif applies_to(model):
        rewards = at_least_fp32(model.score(pair_last_hidden(model.base_model, prompts, chosen,
                                                             rejected, pad_id))[:, 0])
    else:
        rewards = head_rewards(model, prompts * 2, chosen + rejected, pad_id)[:, 0]
    return rewards[: len(pairs)], rewards[len(pairs):]


def ranking_rewards(model, rankings: list[Ranking], pad_id: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards (B, K), mask (B, K)): each ranking's rewards best first, right-padded to the
    longest ranking; one forward over every response of the batch."""
    k = max(len(rs) for _, rs in rankings)
    flat = head_rewards(model, [p for p, rs in rankings for _ in rs],
                        [r for _, rs in rankings for r in rs], pad_id)[:, 0]
    rewards = flat.new_zeros(len(rankings), k)
    mask = torch.zeros(len(rankings), k, dtype=torch.bool, device=flat.device)
    at = 0
    for i, (_, rs) in enumerate(rankings):
        rewards[i, : len(rs)] = flat[at: at + len(rs)]
        mask[i, : len(rs)] = True
        at += len(rs)
    return rewards, mask


def bradley_terry_batch(center_coefficient: float = 0.0) -> BatchLoss:
    def batch_loss(model, pairs: list[Pair], pad_id: int):
        chosen, rejected = pair_rewards(model, pairs, pad_id)
        loss = reward_model_loss(chosen, rejected, center_coefficient=center_coefficient)
        return loss, (chosen > rejected).float().mean()
    return batch_loss


def plackett_luce_batch(model, rankings: list[Ranking | WeakRanking], pad_id: int):
    """Plackett-Luce; a batch holding a partial or tied ranking uses the weak-order likelihood
    (losses.plackett_luce_weak_order_loss), which equals plain PL on strict rankings."""
    rewards, mask = ranking_rewards(model, [r[:2] for r in rankings], pad_id)
    if all(len(r) == 2 for r in rankings):
        return plackett_luce_loss(rewards, mask), (rewards[:, 0] > rewards[:, 1]).float().mean()
    levels = torch.zeros(mask.shape, dtype=torch.long)
    for i, r in enumerate(rankings):
        levels[i, : len(r[1])] = torch.tensor(r[2] if len(r) == 3 else range(len(r[1])))
    ordered = (levels[:, :, None] < levels[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    right = (rewards[:, :, None] > rewards[:, None, :])[ordered]
    return plackett_luce_weak_order_loss(rewards, levels, mask), right.float().mean()


def head_pair_batch(model, pairs: list[HeadPair], pad_id: int):
    """Bradley-Terry where each pair trains only the head it names (an aspect, a group)."""
    heads = torch.tensor([h for h, _, _, _ in pairs], device=device_of(model))
    prompts = [p for _, p, _, _ in pairs] * 2
    responses = [c for _, _, c, _ in pairs] + [r for _, _, _, r in pairs]
    rewards = head_rewards(model, prompts, responses, pad_id)
    rows = torch.arange(len(pairs), device=heads.device)
    chosen, rejected = rewards[rows, heads], rewards[rows + len(pairs), heads]
    return bradley_terry_loss(chosen, rejected), (chosen > rejected).float().mean()


def train_reward_model(model, pairs: list, cfg: Optimisation, pad_id: int, seed: int,
                       ckpt: Checkpointer, on_step: StepCallback | None = None,
                       center_coefficient: float = 0.0,
                       batch_loss: BatchLoss | None = None, engine: Engine | None = None) -> dict:
    """Bradley-Terry training on `pairs` by default; `center_coefficient` > 0 adds the
    reward-centring penalty (losses.reward_model_loss; TRL's center_rewards_coefficient).
    Another `batch_loss` trains on other examples (rankings, head pairs) with the same loop.
    Every batch loss is a mean over its examples, so a micro-batch weighs 1 / grad_accum."""
    batch_loss = batch_loss or bradley_terry_batch(center_coefficient)
    engine = engine or Engine(cfg)
    fuse_activations(model)  # same function, cheaper kernels (models/fused_ops.py)
    order = BatchOrder(len(pairs), cfg.batch_size, seed)

    def losses(model, step: int):
        for idx in engine.micro_batches(order.indices(step)):
            loss, accuracy = batch_loss(model, [pairs[i] for i in idx], pad_id)
            yield loss * engine.item_weight, {"loss/reward": loss.item(),
                                              "accuracy/train": accuracy.item()}

    return engine.run(model, losses, ckpt, on_step=on_step,
                      items_per_step=("throughput/pairs_per_s", cfg.batch_size))


def train_or_load(backbone: Path, ckpt_dir: Path, examples: list, cfg: RewardHparams, pad: int,
                  seed: int, progress: Callable[[str, int], StepCallback] | None = None,
                  label: str = "reward", num_labels: int = 1, batch_loss: BatchLoss | None = None
                  ) -> tuple[object, dict]:
    """A reward model with `num_labels` heads on the causal LM in `backbone`, checkpointed under
    `ckpt_dir`; one finished before a crash is loaded, not retrained (`ckpt_dir`/final keeps the
    final model, result.json its training result). `progress(label, steps)` is asked for a
    step callback only when it trains."""
    done = ckpt_dir / "final"
    if (done / "config.json").exists():
        model = load_reward_model(done)
        return model, json.loads((ckpt_dir / "result.json").read_text())
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=num_labels)
    model.config.pad_token_id = pad
    result = train_reward_model(model, examples, cfg, pad, seed,
                                Checkpointer(ckpt_dir, cfg.checkpoint_every),
                                progress(label, cfg.steps) if progress else None,
                                cfg.center_coefficient, batch_loss)
    model.save_pretrained(done)
    atomic_write_json(ckpt_dir / "result.json", result)
    return model, result
