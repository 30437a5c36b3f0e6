"""KTO (Ethayarajh et al. 2024) from binary feedback: each (prompt, response) is desirable or
undesirable on its own, no pairs needed. The reference point z_ref (a batch estimate of
KL(π || ref)) comes from mismatched pairs, as in TRL: prompt i with the response of example
i + 1 of the same batch."""

from __future__ import annotations

from typing import Callable

import torch
from accelerate import Accelerator

from ..models.batching import device_of
from ..models.logprobs import response_batch, sequence_logprobs
from .engine import Engine
from .hparams import KTOHparams
from .losses import kto_loss
from .loop import BatchOrder, Checkpointer, StepCallback
from .policy_loop import optimise

Example = tuple[list[int], list[int], bool]  # prompt ids, response ids, desirable


def example_logprobs(model, prompts: list[list[int]], responses: list[list[int]],
                     pad_id: int) -> torch.Tensor:
    """(B,) summed log-probs of each response given its prompt."""
    device = device_of(model)
    return sequence_logprobs(model, *(t.to(device)
                                      for t in response_batch(prompts, responses, pad_id)))


@torch.no_grad()
def reference_example_logprobs(model, examples: list[Example], pad_id: int,
                               batch_size: int = 128) -> torch.Tensor:
    model.eval()
    return torch.cat([example_logprobs(model, [p for p, _, _ in chunk], [r for _, r, _ in chunk],
                                       pad_id)
                      for chunk in (examples[b: b + batch_size]
                                    for b in range(0, len(examples), batch_size))])


def train_kto(policy, reference, examples: list[Example], ref_logps: torch.Tensor,
              cfg: KTOHparams, pad_id: int, seed: int, ckpt: Checkpointer,
              on_step: StepCallback | None = None,
              evaluate: Callable[[int], dict] | None = None,
              accelerator: Accelerator | None = None) -> dict:
    """cfg.batch_size examples per step; β = cfg.beta; desirable and undesirable weights 1."""
    if cfg.batch_size < 2:
        raise ValueError("kto: batch_size must be >= 2 (the reference point pairs each prompt "
                         "with another example's response)")
    engine = Engine(cfg, accelerator)
    order = BatchOrder(len(examples), cfg.batch_size, seed)
    desirable = torch.tensor([d for _, _, d in examples])

    def losses(model, step: int):
        idx = engine.shard(order.indices(step))
        prompts = [examples[i][0] for i in idx]
        responses = [examples[i][1] for i in idx]
        shifted = responses[1:] + responses[:1]  # mismatched: prompt i, response i + 1
        with torch.no_grad():  # z_ref from the whole global batch, before any micro-batch
            policy_kl = engine.accelerator.gather(
                example_logprobs(model, prompts, shifted, pad_id))
            ref_kl = engine.accelerator.gather(
                example_logprobs(reference, prompts, shifted, pad_id))
        size = len(idx) // engine.grad_accum
        for k, micro in enumerate(engine.micro_batches(order.indices(step))):
            part = slice(k * size, (k + 1) * size)  # micro-batches are consecutive in the shard
            logps = example_logprobs(model, prompts[part], responses[part], pad_id)
            wanted = desirable[micro].to(logps.device)
            out = kto_loss(logps, ref_logps[micro].to(logps.device), wanted, cfg.beta,
                           policy_kl, ref_kl)
            # accuracy: the implicit reward β(π - ref) has the label's sign
            yield out.loss * engine.item_weight, {
                "loss/kto": out.loss.item(), "kto/z_ref": out.kl.item(),
                "rewards/accuracy": ((out.rewards > 0) == wanted).float().mean().item()}

    reference.eval().to(engine.device)
    return optimise(policy, cfg, ckpt, losses, on_step=on_step, evaluate=evaluate, engine=engine,
                    items_per_step=("throughput/examples_per_s", cfg.batch_size))
