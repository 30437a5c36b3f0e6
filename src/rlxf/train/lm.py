"""Next-token training: pretraining (loss on every token) and SFT (loss on the response only)."""

from __future__ import annotations

import time

import torch

from ..config import TrainConfig
from ..models.fused_ops import fuse_activations
from .loop import BatchOrder, Checkpointer, StepCallback, adamw, lr_at, pad_right, set_lr


def lm_batch(examples: list[tuple[list[int], int | list[int]]], pad_id: int):
    """examples: (token ids, index of the first token that is trained on -- or a 0/1 mask over
    the ids, for multi-turn SFT's assistant turns)."""
    ids, mask = pad_right([ids for ids, _ in examples], pad_id)
    labels = ids.clone()
    labels[mask == 0] = -100
    for i, (_, trained) in enumerate(examples):
        if isinstance(trained, int):
            labels[i, :trained] = -100
        else:
            labels[i, : len(trained)][torch.tensor(trained) == 0] = -100
    return ids, mask, labels


def backbone_of(model):
    """The transformer without its LM head. A peft model's `base_model` is the LoRA wrapper of the
    whole causal LM, so look through it to the causal LM's own backbone (adapters stay active)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model.base_model


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the trained tokens (labels != -100): what
    `model(labels=...).loss` computes, with the LM head and the softmax run only where a label is
    trained (SFT trains on the response alone, so the prompt's logits would be thrown away)."""
    hidden = backbone_of(model)(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return torch.nn.functional.cross_entropy(logits, targets[keep])


def train_lm(model, examples: list[tuple[list[int], int]], cfg: TrainConfig, pad_id: int,
             seed: int, ckpt: Checkpointer, on_step: StepCallback | None = None) -> dict:
    fuse_activations(model)  # same function, one kernel (models/fused_ops.py)
    optimizer = adamw(model.parameters(), cfg.lr)
    start = ckpt.load(model, optimizer)
    order = BatchOrder(len(examples), cfg.batch_size, seed)
    model.train()
    loss_ema, tokens, t0 = ckpt.extra.get("loss_ema"), 0, time.perf_counter()
    for step in range(start, cfg.steps):
        ids, mask, labels = lm_batch([examples[i] for i in order.indices(step)], pad_id)
        set_lr(optimizer, lr_at(step, cfg))
        # HF averages the loss over trained tokens (token-mean), as TRL's SFTTrainer does.
        loss = lm_loss(model, ids, mask, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += int(mask.sum())
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        ckpt.extra["loss_ema"] = loss_ema
        ckpt.maybe_save(step + 1, model, optimizer, final=step + 1 == cfg.steps)
        if on_step:
            on_step(step + 1, {"loss/lm": loss_ema})
    model.eval()
    elapsed = time.perf_counter() - t0
    return {"loss/lm": loss_ema, "steps": cfg.steps, "resumed_from_step": start,
            "throughput/tokens_per_s": tokens / elapsed if elapsed > 0 else None}
