"""`rlxf grpo` and `rlxf rloo` on a local model directory and a prompt file, read top to bottom:

  0. setup    -- prompts, reward sources, model, LoRA, reference, held-out slice, OUT.partial/
                 (tune/rl_session.py)
  1. rollout  -- `batch_size` training prompts, `group_size` completions each, from the rollout
                 backend (models/rollout_backend.py), stopped at the chat template's end of turn
  2. reward   -- every source on the decoded completions; their weighted sum
  3. advantage-- GRPO: (r - group mean) / group std, batch std or 1; RLOO: leave-one-out (KL in
                 the reward) or REINFORCE++-baseline; DAPO's dynamic sampling drops groups
                 whose rewards are all equal, overlong filtering masks truncated completions.
                 With a process reward model (`prm:`), per token: each step's reward
                 normalised over the group's steps, summed over the steps from the token's
                 own to the last (DeepSeekMath's process supervision)
  4. optimise -- GRPO: μ updates of `group_policy_loss` (loss_type, token or sequence ratio,
                 ε_low/ε_high, β·k3); RLOO: one REINFORCE update
The optimizer, schedule, exact checkpoints and eval points are the shared policy loop's
(train/policy_loop.py). Processes and `grad_accum` split the step's prompts into whole groups;
each prompt samples from a seed of its own (its position in the batch), and what is the
batch's -- the kept responses, DAPO's token count, the batch std -- is reduced over every
process, so N processes x K micro-batches take the step of one batch (docs/SCALE.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import TuneGroupRLConfig
from ..models.group_sampling import prompt_seeds
from ..models.logprobs import group_response_logprobs
from ..train.advantages import (batch_scaled_advantages, group_advantages, groups_with_signal,
                                overlong_filtered, process_advantages, rloo_advantages)
from ..train.group_rl import fill_unscored
from ..train.engine import Engine
from ..train.loop import BatchOrder
from ..train.losses import group_policy_loss, rloo_loss
from ..train.policy_loop import optimise
from .common import TuneError
from .hparams import train_hparams
from .rl_session import RLSession, tensorboard

Progress = Callable[[str, int], Callable[[int, dict], None]] | None


def _advantages(cfg: TuneGroupRLConfig, command: str, scores: torch.Tensor,
                seq_kl: torch.Tensor, G: int, batch_std: torch.Tensor | None) -> torch.Tensor:
    """Outcome advantages of whole groups; `batch_std`: the whole batch's (over every process
    and micro-batch) where the scale is the batch's."""
    if command == "rloo":
        # RLOO (Ahmadian et al. 2024; TRL): the KL penalty is part of the reward
        shaped = (scores - cfg.beta * seq_kl).view(-1, G)
        return (rloo_advantages(shaped) if cfg.baseline == "loo"
                else batch_scaled_advantages(shaped, batch_std=batch_std)).flatten()
    grouped = scores.view(-1, G)
    if cfg.scale_rewards == "batch":
        return batch_scaled_advantages(grouped, batch_std=batch_std).flatten()
    return group_advantages(grouped, scale=cfg.scale_rewards == "group").flatten()


def _step_advantages(cfg: TuneGroupRLConfig, command: str, steps: tuple[list, list],
                     seq_kl: torch.Tensor, G: int, length: int) -> torch.Tensor:
    """(B, length) per-token advantages from step rewards and their token ends."""
    rewards, ends = steps
    if command == "rloo":
        # the KL penalty is part of the reward, at the end (the last step), as for outcomes
        rewards = [r[:-1] + [r[-1] - cfg.beta * kl] if r else r
                   for r, kl in zip(rewards, seq_kl.tolist())]
    return process_advantages(rewards, ends, G, length, scale=cfg.scale_rewards == "group",
                              leave_one_out=command == "rloo").float()


def _check_process(cfg: TuneGroupRLConfig, command: str, rewards: list[str]) -> None:
    if not any(spec.startswith("prm:") for spec in rewards):
        return
    if command == "grpo" and cfg.scale_rewards == "batch":
        raise TuneError("a prm: reward credits each step; scale_rewards = \"batch\" is not "
                        "built for step rewards (use \"group\" or \"none\")")
    if command == "rloo" and cfg.baseline != "loo":
        raise TuneError("a prm: reward credits each step; rloo's baseline = \"batch\" is not "
                        "built for step rewards (use \"loo\")")


@dataclass
class _MicroBatch:
    """One micro-batch's kept groups, whole: their rows in this process's rollout, the
    reference's per-token log-probs and the loss mask."""
    prompts: list[list[int]]
    responses: list[list[int]]
    rows: torch.Tensor
    ref: torch.Tensor
    mask: torch.Tensor


def _micro_batch(s: RLSession, prompts: list, samples, keep: torch.Tensor, G: int,
                 groups: range, mask_truncated: bool) -> _MicroBatch | None:
    """Groups `groups` of this process's rollout less those dynamic sampling dropped (None
    when none is left)."""
    kept = [g for g in groups if keep[g]]
    if not kept:
        return None
    rows = torch.tensor([g * G + j for g in kept for j in range(G)])
    responses = [samples.responses[i] for i in rows.tolist()]
    ref, mask = s.ref_logprobs([prompts[g] for g in kept], responses)
    mask = mask.float()
    if mask_truncated:
        mask = overlong_filtered(mask, torch.tensor(samples.truncated)[rows])
    return _MicroBatch([prompts[g] for g in kept], responses, rows, ref, mask)


def _forward(model, m: _MicroBatch, pad: int, no_grad: bool = False) -> torch.Tensor:
    with torch.set_grad_enabled(not no_grad):
        return group_response_logprobs(model, m.prompts, m.responses, pad)[0]


def _zero_loss(model) -> torch.Tensor:
    """0 through one token's forward: a process whose micro-batch lost every group still
    backpropagates into the parameters a forward touches, so its gradients join the engine's
    all-reduce with the same tensors as every other process's."""
    device = next(model.parameters()).device
    return model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device)).logits.sum() * 0


def _weight(reduction: str, rows: int, kept_rows: float, engine: Engine) -> float:
    """What a micro-batch's loss is multiplied by so that the engine's sum over micro-batches,
    averaged over processes, is the whole batch's loss. "dapo": the loss is already a sum over
    the batch's tokens (tokens_in_batch); "bnpo": the micro-batch's own token mean (TRL's bnpo:
    it depends on the micro-batch size); otherwise a mean over the micro-batch's rows
    (responses), reweighted to a mean over the batch's kept rows."""
    if reduction == "dapo":
        return engine.num_processes
    if reduction == "bnpo":
        return engine.item_weight
    return rows * engine.num_processes / kept_rows


def _batch_std(values: torch.Tensor, engine: Engine) -> torch.Tensor:
    """The unbiased std of the whole batch's values, each process holding an equal share."""
    return engine.accelerator.gather(values.to(engine.device)).cpu().std()


def run_group_rl(command: str, model_dir: Path, prompts_path: Path, out: Path,
                 cfg: TuneGroupRLConfig, rewards: list[str], reward_weights: str | None = None,
                 progress: Progress = None, eval_extra=None,
                 eval_prompts: Path | None = None) -> dict:
    """`eval_extra`: more measurements at each eval point (RLSession.eval_extra);
    `eval_prompts`: the held-out prompts' file (else cfg.eval_fraction of PROMPTS)."""
    if command not in ("grpo", "rloo"):
        raise ValueError(f"run_group_rl: command must be grpo or rloo, got {command!r}")
    if command == "rloo" and cfg.updates_per_rollout != 1:
        raise TuneError("rloo is on-policy REINFORCE: updates_per_rollout must be 1 (use grpo "
                        "for several clipped updates per rollout)")
    _check_process(cfg, command, rewards)
    s = RLSession.open(command, model_dir, prompts_path, out, cfg, rewards, reward_weights,
                       top_p=cfg.top_p, eval_extra=eval_extra, eval_prompts=eval_prompts)
    G, pad, order = cfg.group_size, s.pad_id, BatchOrder(len(s.train), cfg.batch_size, cfg.seed)
    engine = s.engine
    # REINFORCE++-baseline with the KL in the reward scales by the batch's std of r - β·KL, so
    # every micro-batch's π_old log-probs come before the first update's loss
    old_first = command == "rloo" and cfg.baseline == "batch" and cfg.beta != 0
    batch_scaled = (command == "rloo" and cfg.baseline == "batch") or \
        (command == "grpo" and cfg.scale_rewards == "batch")

    def losses(model, step: int):
        # 1. rollout: this process's micro-batches of the step's prompts, as positions in the
        # global batch (whole groups); each prompt samples from its position's seed, so the
        # split over processes and micro-batches does not change what is drawn (and a resumed
        # run draws the same)
        indices = order.indices(step)
        micro = engine.micro_batches(list(range(cfg.batch_size)))
        positions = [pos for part in micro for pos in part]
        prompts = [s.train[indices[pos]] for pos in positions]
        samples = s.backend.sample(s.policy, prompts, G,
                                   seed=prompt_seeds(cfg.seed * 100_003 + step, positions))
        # 2. reward
        scored = s.score([p for p in prompts for _ in range(G)], samples.responses,
                         samples.truncated)
        raw = torch.tensor(scored.total, dtype=torch.float32)
        unscored = torch.isnan(raw)
        steps = s.step_credit(samples.responses, scored)
        scores = fill_unscored(raw.view(-1, G)).flatten()
        truncated = torch.tensor(samples.truncated)
        lengths = torch.tensor([len(r) for r in samples.responses], dtype=torch.float32)
        metrics = {"reward/train": scores.mean().item(),
                   "reward/unscored": unscored.float().mean().item(),
                   "length/tokens": (lengths * ~truncated if cfg.mask_truncated
                                     else lengths).mean().item(),
                   "truncated/share": truncated.float().mean().item()}
        keep = torch.ones(len(prompts), dtype=torch.bool)
        if cfg.dynamic_sampling:
            keep = groups_with_signal(scores.view(-1, G))
            metrics["groups/kept"] = keep.float().mean().item()
        per = len(prompts) // len(micro)  # prompts per micro-batch
        parts = [_micro_batch(s, prompts, samples, keep, G, range(k * per, (k + 1) * per),
                              cfg.mask_truncated) for k in range(len(micro))]
        # the whole batch's counts (every process): each micro-batch's loss is its share of
        # the batch's loss, so N processes x K micro-batches take the step of one batch
        kept_rows = engine.global_sum(float(keep.sum()) * G)
        if kept_rows == 0:
            return  # no group carries a signal anywhere: no update this step
        tokens = engine.global_sum(sum(float(m.mask.sum()) for m in parts if m))
        model.train()
        old = [_forward(model, m, pad, no_grad=True) if old_first and m else None for m in parts]
        seq_kl = torch.zeros(len(scores))  # dropped groups: 0
        for m, o in zip(parts, old):
            if o is not None:
                seq_kl[m.rows] = ((o - m.ref) * m.mask).sum(1).float()
        batch_std = _batch_std(scores - cfg.beta * seq_kl if command == "rloo" else scores,
                               engine) if batch_scaled else None
        advantages: list = [None] * len(parts)
        for update in range(cfg.updates_per_rollout):
            for k, m in enumerate(parts):
                if m is None:  # every group of this micro-batch dropped: a zero contribution
                    yield _zero_loss(model), {f"loss/{command}": 0.0, **metrics,
                                              "kl/train": 0.0, **({"policy/clipfrac": 0.0}
                                                                  if command == "grpo" else {})}
                    continue
                logprobs = _forward(model, m, pad)
                if update == 0:
                    # π_old is the policy that sampled, unchanged since: this forward's
                    # log-probs (or the first pass's, identical: the forward is deterministic)
                    if old[k] is None:
                        old[k] = logprobs.detach()
                        seq_kl[m.rows] = ((old[k] - m.ref) * m.mask).sum(1).float()
                    # 3. advantages within each prompt's group (the batch's std where scaled)
                    own = seq_kl[m.rows]
                    if steps is None:
                        adv = _advantages(cfg, command, scores[m.rows], own, G, batch_std)
                        advantages[k] = torch.where(unscored[m.rows], 0.0, adv)
                    else:
                        rows = m.rows.tolist()
                        adv = _step_advantages(cfg, command, ([steps[0][i] for i in rows],
                                                              [steps[1][i] for i in rows]),
                                               own, G, m.mask.shape[1])
                        advantages[k] = torch.where(unscored[m.rows][:, None], 0.0, adv)
                # 4. optimise: this micro-batch's share of the batch's loss
                extra = {}
                if command == "grpo":
                    out_ = group_policy_loss(logprobs, old[k], advantages[k], m.mask,
                                             loss_type=cfg.loss_type,
                                             importance_level=cfg.importance_level,
                                             clip_low=cfg.clip_range,
                                             clip_high=cfg.clip_range_high, kl_coef=cfg.beta,
                                             ref_logprobs=m.ref,
                                             max_completion_length=cfg.max_new_tokens,
                                             tokens_in_batch=tokens)
                    loss, extra = out_.loss, {"policy/clipfrac": out_.clipfrac.item()}
                else:
                    loss = rloo_loss(logprobs, advantages[k], m.mask)
                share = loss * _weight(cfg.loss_type if command == "grpo" else "mean",
                                       len(m.rows), kept_rows, engine)
                # reported: the batch's loss, once the engine averages micro-batches and processes
                yield share, {f"loss/{command}": share.item() * engine.grad_accum, **metrics,
                              "kl/train": seq_kl[m.rows].mean().item(), **extra}

    tracker = tensorboard(s.output.work / "tb", command, engine.is_main_process)
    with tracker:
        result = optimise(s.policy, train_hparams(cfg), s.output.checkpointer(cfg.checkpoint_every),
                          losses, on_step=tracker.wrap(s.progress(progress, command)),
                          evaluate=lambda step: s.evaluate(step, tracker),
                          items_per_step=("throughput/completions_per_s", cfg.batch_size * G),
                          engine=s.engine)
    return s.finish(result)
