"""GRPO (Shao et al. 2024) and RLOO (Ahmadian et al. 2024): RL against a scalar reward with a
group baseline instead of a critic, optionally under a safety constraint (Safe RLHF, Dai et al.
2023, by a Lagrange multiplier).

Each step:
  1. rollout   -- `batch_size` training prompts, `group_size` responses each, sampled from the
                  policy at temperature 1 (so log π is the sampling distribution; each prompt
                  prefilled once, models/group_sampling.py); per-token log-probs under the frozen
                  reference (each prompt's forward once, models/shared_prefix.py). π_old is the
                  first update's own forward, detached: the policy has not moved since sampling
  2. reward    -- the reward function (the reward ensemble's mean, mean - λ·std or worst member,
                  models/reward_ensemble.conservative_rewards; or the AI judge); with a cost
                  function, r' = (r - λ c) / (1 + λ); for RLOO the KL to the reference enters
                  the reward: r' - β Σ_t (log π_old - log ref)
  3. advantage -- group-normalised (GRPO) or leave-one-out (RLOO), within each prompt's group
  4. optimise  -- GRPO: μ updates of the clipped surrogate + β·k3 KL per token (sequence mean);
                  RLOO: one REINFORCE update (the clipped ratio is 1 on-policy)
  5. dual step -- λ ← max(0, λ + η (E[c] - d)), kept in the checkpoint
Resume is exact: prompts come from `BatchOrder`, each prompt's group is sampled from a seed of
(seed, step, its position in the batch), and λ is saved with the model. The seeds also make the
rollout independent of how the batch is split over processes and micro-batches; the advantages
are within each group and the loss a mean over responses, so N processes × K micro-batches take
the step of one batch (tests/test_engine.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from accelerate import Accelerator

from ..models.fused_ops import fuse_activations
from ..models.group_sampling import Seed, prompt_seeds, sample_k_per_prompt
from ..models.logprobs import group_response_logprobs
from .advantages import group_advantages, masked_mean, rloo_advantages
from .engine import Engine
from .hparams import GroupRLHparams
from .losses import grpo_loss, k3_kl, rloo_loss
from .loop import BatchOrder, Checkpointer, StepCallback
from .policy_loop import optimise

# (prompt ids, response ids) of B samples -> B rewards (NaN: the judge could not score it)
RewardFn = Callable[[list[list[int]], list[list[int]]], list[float]]
CostFn = RewardFn


# --- pure pieces ---------------------------------------------------------------------------------

def dual_ascent(lam: float, mean_cost: float, threshold: float, lr: float) -> float:
    """One projected gradient-ascent step on the dual of max E[r] s.t. E[c] <= d:
    λ ← max(0, λ + η (E[c] - d)). λ grows while the constraint is violated and decays to 0 when
    it is slack (Safe RLHF, Dai et al. 2023, §3.3, without their log-space parametrisation)."""
    return max(0.0, lam + lr * (mean_cost - threshold))


def lagrangian_reward(reward: torch.Tensor, cost: torch.Tensor, lam: float) -> torch.Tensor:
    """(r - λ c) / (1 + λ): the Lagrangian's per-sample objective, rescaled so its size does not
    grow with λ (Safe RLHF, Dai et al. 2023, eq. 31 applies the same 1/(1+λ) to advantages)."""
    return (reward - lam * cost) / (1 + lam)


def fill_unscored(rewards: torch.Tensor) -> torch.Tensor:
    """(P, G) with NaN where a sample could not be scored -> each NaN replaced by the mean of the
    scored samples of its group (0 if none), so it gets (close to) zero advantage: nothing is
    guessed about it, and its group's baseline is unchanged."""
    scored = ~torch.isnan(rewards)
    group_mean = torch.where(scored, rewards, 0.0).sum(1, keepdim=True) / \
        scored.sum(1, keepdim=True).clamp(min=1)
    return torch.where(scored, rewards, group_mean.expand_as(rewards))


# --- the recipe ----------------------------------------------------------------------------------

@dataclass
class Rollout:
    """B = P·G sampled responses (prompt p's group is rows p·G ... p·G + G - 1). Per-token
    tensors are aligned to the responses: column t is response token t."""
    group_prompts: list[list[int]]  # P prompt ids, each once
    prompts: list[list[int]]     # B prompt ids (each prompt G times, as the reward sees them)
    responses: list[list[int]]   # B response ids, up to and including <eos>
    mask: torch.Tensor           # (B, Tr) 1 on response tokens
    ref_logprobs: torch.Tensor   # (B, Tr) log-probs of the sampled tokens under the reference

    def logprobs(self, model, pad_id: int) -> torch.Tensor:
        """(B, Tr) log π of the sampled tokens under `model` (each prompt's forward once where
        models/shared_prefix.py applies)."""
        return group_response_logprobs(model, self.group_prompts, self.responses, pad_id)[0]

    def part(self, k: int, parts: int) -> "Rollout":
        """Groups k·P/parts ... (k+1)·P/parts - 1, whole (a micro-batch), their per-token
        tensors cut to their own longest response."""
        size, G = len(self.group_prompts) // parts, len(self.prompts) // len(self.group_prompts)
        rows = slice(k * size * G, (k + 1) * size * G)
        width = max(len(r) for r in self.responses[rows])
        return Rollout(self.group_prompts[k * size: (k + 1) * size], self.prompts[rows],
                       self.responses[rows], self.mask[rows, :width],
                       self.ref_logprobs[rows, :width])


@torch.no_grad()
def rollout(policy, reference, prompts: list[list[int]], group_size: int, pad_id: int,
            eos_id: int, max_new_tokens: int, seed: Seed) -> Rollout:
    responses = sample_k_per_prompt(policy, prompts, group_size, temperature=1.0,
                                    max_new_tokens=max_new_tokens, seed=seed, pad_id=pad_id,
                                    eos_id=eos_id)
    reference.eval()
    ref, mask = group_response_logprobs(reference, prompts, responses, pad_id)
    return Rollout(prompts, [p for p in prompts for _ in range(group_size)], responses,
                   mask.float(), ref)


def train_group_rl(policy, reference, prompts: list[list[int]], reward_fn: RewardFn,
                   cfg: GroupRLHparams, pad_id: int, eos_id: int, max_new_tokens: int, seed: int,
                   ckpt: Checkpointer, on_step: StepCallback | None = None,
                   evaluate: Callable[[int], dict] | None = None,
                   cost_fn: CostFn | None = None,
                   accelerator: Accelerator | None = None) -> dict:
    """cfg.algorithm "grpo" or "rloo" on `prompts` (ids); cfg.batch_size prompts per step,
    split over processes. With `cost_fn`, cfg.safe.cost_threshold bounds its mean."""
    if cfg.algorithm not in ("grpo", "rloo"):
        raise ValueError(f"train_group_rl: algorithm must be grpo or rloo, got {cfg.algorithm!r}")
    safe = cfg.safe
    if cost_fn is not None and safe.cost_threshold is None:
        raise ValueError("train_group_rl: a cost function needs [policy.safe] cost_threshold")
    engine = Engine(cfg, accelerator)
    G, beta = cfg.group.group_size, cfg.group.kl_coef
    order = BatchOrder(len(prompts), cfg.batch_size, seed)

    def losses(model, step: int):
        # 1. rollout (the unwrapped policy samples; the same seed on a resumed run)
        # this process's micro-batches as positions in the step's global batch (each group
        # stays whole); each prompt samples from its position's seed, so the split over
        # processes and micro-batches does not change what is drawn
        indices, micro = order.indices(step), engine.micro_batches(list(range(cfg.batch_size)))
        positions = [pos for part in micro for pos in part]
        r = rollout(policy, reference, [prompts[indices[pos]] for pos in positions], G, pad_id,
                    eos_id, max_new_tokens, prompt_seeds(seed * 100_003 + step, positions))
        # 2. reward
        raw = torch.tensor(reward_fn(r.prompts, r.responses), dtype=torch.float32)
        unscored = torch.isnan(raw)
        scores = fill_unscored(raw.view(-1, G)).flatten()
        lam = ckpt.extra.get("lagrangian", safe.lagrangian_init)
        metrics = {"reward/train": scores.mean().item(),
                   "reward/unscored": unscored.float().mean().item(),
                   "length/tokens": r.mask.sum(1).mean().item()}
        if cost_fn is not None:
            cost = torch.tensor(cost_fn(r.prompts, r.responses), dtype=torch.float32)
            scores = lagrangian_reward(scores, cost, lam)
            metrics.update({"cost/train": cost.mean().item(), "safe/lambda": lam})
        model.train()
        parts = [r.part(k, len(micro)) for k in range(len(micro))]
        rows = len(r.responses) // len(parts)
        old, advantages, kl_to_sft = [], [], []
        for update in range(cfg.group.updates_per_rollout):
            for k, part in enumerate(parts):
                logprobs = part.logprobs(model, pad_id)
                if update == 0:
                    # π_old is the policy that sampled, and no update has happened since: its
                    # log-probs are this forward's (as TRL's GRPOTrainer when μ = 1), so no
                    # separate π_old forward. Exact because the policy's forward is
                    # deterministic (dropout is off in rlxf's models, models/build.py).
                    old.append(logprobs.detach())
                    seq_kl = ((old[k] - part.ref_logprobs) * part.mask).sum(1)
                    kl_to_sft.append(seq_kl.mean().item())
                    # 3. advantages within each prompt's group
                    own = scores[k * rows: (k + 1) * rows].to(logprobs.device)
                    if cfg.algorithm == "grpo":
                        adv = group_advantages(own.view(-1, G)).flatten()
                    else:
                        # RLOO (Ahmadian et al. 2024; TRL): the KL penalty is part of the reward
                        adv = rloo_advantages((own - beta * seq_kl).view(-1, G)).flatten()
                    skipped = unscored[k * rows: (k + 1) * rows].to(adv.device)
                    advantages.append(torch.where(skipped, 0.0, adv))
                # 4. optimise
                if cfg.algorithm == "grpo":
                    out = grpo_loss(logprobs, old[k], advantages[k], part.mask,
                                    clip_range=cfg.group.clip_range, kl_coef=beta,
                                    ref_logprobs=part.ref_logprobs, reduction="sequence")
                    loss, step_metrics = out.loss, {"policy/clipfrac": out.clipfrac.item()}
                else:
                    loss, step_metrics = rloo_loss(logprobs, advantages[k], part.mask), {}
                step_metrics["kl/k3"] = masked_mean(k3_kl(logprobs.detach(), part.ref_logprobs),
                                                    part.mask).item()
                yield loss * engine.item_weight, {
                    f"loss/{cfg.algorithm}": loss.item(), **metrics,
                    "kl/to_sft_train": kl_to_sft[k], **step_metrics}
        # 5. dual step on the Lagrange multiplier, from the global mean cost
        if cost_fn is not None:
            global_cost = engine.global_mean({"cost": metrics["cost/train"]})["cost"]
            ckpt.extra["lagrangian"] = dual_ascent(lam, global_cost, safe.cost_threshold,
                                                   safe.lagrangian_lr)

    def evaluate_with_lambda(step: int) -> dict:  # the multiplier's curve beside the cost's
        return {**evaluate(step), "safe/lambda": ckpt.extra.get("lagrangian",
                                                                safe.lagrangian_init)}

    reference.eval().to(engine.device)
    for model in (policy, reference):
        fuse_activations(model)  # same function, cheaper kernels (models/fused_ops.py)
    result = optimise(policy, cfg, ckpt, losses, on_step=on_step,
                      evaluate=evaluate_with_lambda if evaluate and cost_fn else evaluate,
                      engine=engine,
                      items_per_step=("throughput/completions_per_s", cfg.batch_size * G))
    if cost_fn is not None:
        result["safe/lambda_final"] = ckpt.extra.get("lagrangian", safe.lagrangian_init)
    return result
