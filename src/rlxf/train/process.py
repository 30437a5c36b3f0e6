"""Outcome and process reward models for multi-step answers (Lightman et al. 2023; Uesato et al.
2022): both are a scalar head on a small transformer trained with binary cross-entropy, the
outcome model on (prompt + whole response, final answer right), the process model on
(prompt + response up to step k, step k right) for every step. The process score of a
response is the *minimum* over its steps of σ(step logit): a chain is as good as its weakest step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.batching import device_of
from ..models.logprobs import response_batch
from ..models.reward_scores import at_least_fp32
from .engine import Engine
from .hparams import Optimisation
from .loop import BatchOrder, Checkpointer

Example = tuple[list[int], list[int], float]  # prompt ids, response (prefix) ids, label in {0, 1}


def classifier_logits(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int
                      ) -> torch.Tensor:
    ids, mask, _ = response_batch(prompts, responses, pad_id)
    device = device_of(model)
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]


def train_classifier(model, examples: list[Example], cfg: Optimisation, pad_id: int, seed: int,
                     ckpt: Checkpointer, on_step=None, engine: Engine | None = None) -> dict:
    """Binary cross-entropy on the scalar head: -[y log σ(z) + (1-y) log(1-σ(z))], the mean
    over each micro-batch weighing 1 / grad_accum. Metrics are the last step's (no smoothing)."""
    engine = engine or Engine(cfg)
    order = BatchOrder(len(examples), cfg.batch_size, seed)

    def losses(model, step: int):
        for idx in engine.micro_batches(order.indices(step)):
            batch = [examples[i] for i in idx]
            logits = classifier_logits(model, [p for p, _, _ in batch],
                                       [r for _, r, _ in batch], pad_id)
            logits = at_least_fp32(logits)
            labels = torch.tensor([y for _, _, y in batch], dtype=logits.dtype,
                                  device=logits.device)
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            yield loss * engine.item_weight, {
                "loss": loss.item(),
                "accuracy/train_batch": ((logits > 0).float() == labels).float().mean().item()}

    result = engine.run(model, losses, ckpt, on_step=on_step, ema_weight=1.0,
                        items_per_step=("throughput/examples_per_s", cfg.batch_size))
    return {k: result.get(k) for k in ("loss", "accuracy/train_batch", "steps")}


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
