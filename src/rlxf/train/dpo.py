"""Direct Preference Optimisation (Rafailov et al. 2023) and its family (IPO, conservative DPO,
robust DPO) against a frozen reference whose log-probs are computed once, before training (the
reference never changes). The loss is chosen once, from `cfg.algorithm`."""

from __future__ import annotations

from typing import Callable

import torch
from accelerate import Accelerator

from ..models.batching import device_of
from ..models.fused_ops import fuse_activations
from ..models.logprobs import response_batch, sequence_logprobs
from ..models.shared_prefix import applies_to, pair_response_logprobs
from .engine import Engine
from .hparams import DPOHparams
from .losses import cdpo_loss, dpo_loss, ipo_loss, robust_dpo_loss
from .loop import BatchOrder, Checkpointer, StepCallback
from .pair_packing import pack_for, packed_pair_logprobs
from .policy_loop import optimise
from .reward import Pair

# (policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_len, rejected_len), all (B,)
# -> (loss, chosen_rewards, rejected_rewards)
PairLoss = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
PAIR_ALGORITHMS = ("dpo", "ipo", "cdpo", "robust")


def pair_loss(cfg: DPOHparams) -> PairLoss:
    """The DPO-family loss of `cfg.algorithm`, with its hyper-parameters bound."""
    a, beta, eps = cfg.algorithm, cfg.beta, cfg.label_smoothing
    if a == "dpo":
        return lambda pc, pr, rc, rr, lc, lr: dpo_loss(pc, pr, rc, rr, beta)
    if a == "ipo":  # length-normalised, as TRL (see ipo_loss)
        return lambda pc, pr, rc, rr, lc, lr: ipo_loss(pc, pr, rc, rr, beta, lc, lr)
    if a == "cdpo":
        return lambda pc, pr, rc, rr, lc, lr: cdpo_loss(pc, pr, rc, rr, beta, eps)
    if a == "robust":
        return lambda pc, pr, rc, rr, lc, lr: robust_dpo_loss(pc, pr, rc, rr, beta, eps)
    raise ValueError(f"pair_loss: {a!r} is not a pairwise algorithm ({', '.join(PAIR_ALGORITHMS)})")


def pair_logprobs(model, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed response log-probs, each (B,), from one forward that runs each
    prompt once (padding-free on the CPU: train/pair_packing.py; else models/shared_prefix.py)."""
    prompts, chosen, rejected = ([t[k] for t in pairs] for k in range(3))
    packed = pack_for(model, prompts, chosen, rejected, pad_id)
    if packed is not None:
        logps = packed_pair_logprobs(model, packed)
    elif applies_to(model):
        logps = pair_response_logprobs(model, prompts, chosen, rejected, pad_id)
    else:
        batch = response_batch(prompts * 2, chosen + rejected, pad_id)
        logps = sequence_logprobs(model, *(t.to(device_of(model)) for t in batch))
    return logps[: len(pairs)], logps[len(pairs):]


@torch.no_grad()
def reference_logprobs(model, pairs: list[Pair], pad_id: int, batch_size: int = 128):
    """(chosen, rejected) summed response log-probs of the frozen reference, once. Its
    activations take the fused kernel the policy trains with (same function), so the policy's
    step-0 log-probs equal these bit for bit, and the pass is faster."""
    fuse_activations(model)
    model.eval()
    chosen, rejected = [], []
    for b in range(0, len(pairs), batch_size):
        c, r = pair_logprobs(model, pairs[b: b + batch_size], pad_id)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


def train_dpo(policy, pairs: list[Pair], ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
              cfg: DPOHparams, pad_id: int, seed: int, ckpt: Checkpointer,
              on_step: StepCallback | None = None,
              evaluate: Callable[[int], dict] | None = None,
              accelerator: Accelerator | None = None) -> dict:
    """`evaluate(step)` is called every cfg.eval_every steps (and at 0 and the end); its
    results form the history that the over-optimisation curve is drawn from. With several
    processes, each takes an equal share of every step's global batch of cfg.batch_size pairs."""
    engine = Engine(cfg, accelerator, recipe="dpo")
    loss_fn = pair_loss(cfg)
    fuse_activations(policy)  # same function, cheaper kernels (models/fused_ops.py)
    order = BatchOrder(len(pairs), cfg.batch_size, seed)
    lengths = torch.tensor([[len(c), len(r)] for _, c, r in pairs])

    def losses(model, step: int):
        for idx in engine.micro_batches(order.indices(step)):
            chosen, rejected = pair_logprobs(model, [pairs[i] for i in idx], pad_id)
            # the reference log-probs and lengths were made before the engine placed the model
            ref_c, ref_r, lens = (t[idx].to(chosen.device)
                                  for t in (ref_chosen, ref_rejected, lengths))
            loss, r_c, r_r = loss_fn(chosen, rejected, ref_c, ref_r, lens[:, 0], lens[:, 1])
            # the metrics in one device-to-host copy (each .item() waits for the GPU)
            value, margin, accuracy = torch.stack([t.detach().to(loss.dtype) for t in (
                loss, (r_c - r_r).mean(), (r_c > r_r).to(loss.dtype).mean())]).tolist()
            yield loss * engine.item_weight, {f"loss/{cfg.algorithm}": value,
                                              "rewards/margin": margin,
                                              "rewards/accuracy": accuracy}

    return optimise(policy, cfg, ckpt, losses, on_step=on_step, evaluate=evaluate, engine=engine,
                    items_per_step=("throughput/pairs_per_s", cfg.batch_size))
