"""Outcome and process reward models for multi-step answers (Lightman et al. 2023; Uesato et al.
2022): both are a scalar head on a small transformer trained with binary cross-entropy, the
outcome model on (prompt + whole response, final answer right), the process model on
(prompt + response up to step k, step k right) for every step. The process score of a
response is the *minimum* over its steps of σ(step logit): a chain is as good as its weakest step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..models.logprobs import response_batch
from .loop import BatchOrder, Checkpointer, adamw, lr_at, set_lr

Example = tuple[list[int], list[int], float]  # prompt ids, response (prefix) ids, label in {0, 1}


def classifier_logits(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                      ) -> torch.Tensor:
    ids, mask, _ = response_batch(prompts, responses, pad_id)
    return model(input_ids=ids, attention_mask=mask).logits[:, 0]


def train_classifier(model, examples: list[Example], cfg: TrainConfig, pad_id: int, seed: int,
                     ckpt: Checkpointer, on_step=None) -> dict:
    """Binary cross-entropy on the scalar head: -[y log σ(z) + (1-y) log(1-σ(z))]."""
    optimizer = adamw(model.parameters(), cfg.lr)
    start = ckpt.load(model, optimizer)
    order = BatchOrder(len(examples), cfg.batch_size, seed)
    model.train()
    loss = acc = None
    for step in range(start, cfg.steps):
        batch = [examples[i] for i in order.indices(step)]
        logits = classifier_logits(model, [p for p, _, _ in batch], [r for _, r, _ in batch],
                                   pad_id)
        labels = torch.tensor([y for _, _, y in batch], dtype=logits.dtype)
        set_lr(optimizer, lr_at(step, cfg))
        loss_t = F.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss, acc = loss_t.item(), ((logits > 0).float() == labels).float().mean().item()
        ckpt.maybe_save(step + 1, model, optimizer, final=step + 1 == cfg.steps)
        if on_step:
            on_step(step + 1, {"loss": loss})
    model.eval()
    return {"loss": loss, "accuracy/train_batch": acc, "steps": cfg.steps}


@torch.no_grad()
def classifier_scores(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                      batch_size: int = 512) -> list[float]:
    out: list[float] = []
    for b in range(0, len(prompts), batch_size):
        out += classifier_logits(model, prompts[b: b + batch_size],
                                 responses[b: b + batch_size], pad_id).tolist()
    return out


def process_score(step_logits: list[float]) -> float:
    """PRM score of one response: min over steps of σ(logit) (the weakest step)."""
    return min(torch.sigmoid(torch.tensor(step_logits, dtype=torch.float64)).tolist())
