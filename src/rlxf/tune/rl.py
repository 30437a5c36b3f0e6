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
(train/policy_loop.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..config import TuneGroupRLConfig
from ..models.logprobs import group_response_logprobs
from ..train.advantages import (batch_scaled_advantages, group_advantages, groups_with_signal,
                                overlong_filtered, process_advantages, rloo_advantages)
from ..train.group_rl import fill_unscored
from ..train.loop import BatchOrder
from ..train.losses import group_policy_loss, rloo_loss
from ..train.policy_loop import optimise
from .common import TuneError
from .hparams import train_hparams
from .rl_session import RLSession, tensorboard

Progress = Callable[[str, int], Callable[[int, dict], None]] | None


def _advantages(cfg: TuneGroupRLConfig, command: str, scores: torch.Tensor,
                seq_kl: torch.Tensor, G: int) -> torch.Tensor:
    if command == "rloo":
        # RLOO (Ahmadian et al. 2024; TRL): the KL penalty is part of the reward
        shaped = (scores - cfg.beta * seq_kl).view(-1, G)
        return (rloo_advantages(shaped) if cfg.baseline == "loo"
                else batch_scaled_advantages(shaped)).flatten()
    grouped = scores.view(-1, G)
    if cfg.scale_rewards == "batch":
        return batch_scaled_advantages(grouped).flatten()
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

    def losses(model, step: int):
        # 1. rollout (the same seed on a resumed run)
        prompts = [s.train[i] for i in order.indices(step)]
        samples = s.backend.sample(s.policy, prompts, G, seed=cfg.seed * 100_003 + step)
        # 2. reward
        scored = s.score([p for p in prompts for _ in range(G)], samples.responses,
                         samples.truncated)
        raw = torch.tensor(scored.total, dtype=torch.float32)
        unscored = torch.isnan(raw)
        steps = s.step_credit(samples.responses, scored)
        scores = fill_unscored(raw.view(-1, G)).flatten()
        ref, mask = s.ref_logprobs(prompts, samples.responses)
        mask = mask.float()
        if cfg.mask_truncated:
            mask = overlong_filtered(mask, torch.tensor(samples.truncated))
        metrics = {"reward/train": scores.mean().item(),
                   "reward/unscored": unscored.float().mean().item(),
                   "length/tokens": mask.sum(1).mean().item(),
                   "truncated/share": sum(samples.truncated) / len(samples.truncated)}
        keep = torch.ones(len(prompts), dtype=torch.bool)
        if cfg.dynamic_sampling:
            keep = groups_with_signal(scores.view(-1, G))
            metrics["groups/kept"] = keep.float().mean().item()
            if not keep.any():
                return  # no group carries a signal: no update this step
        rows = keep.repeat_interleave(G)
        prompts = [p for p, k in zip(prompts, keep.tolist()) if k]
        responses = [r for r, k in zip(samples.responses, rows.tolist()) if k]
        ref, mask, unscored = ref[rows], mask[rows], unscored[rows]
        model.train()
        for update in range(cfg.updates_per_rollout):
            logprobs = group_response_logprobs(model, prompts, responses, pad)[0]
            if update == 0:
                # π_old is the policy that sampled, unchanged since: this forward's log-probs
                old = logprobs.detach()
                seq_kl = torch.zeros(len(rows))
                seq_kl[rows] = ((old - ref) * mask).sum(1)
                metrics["kl/train"] = seq_kl[rows].mean().item()
                # 3. advantages within each prompt's group (all groups, then the kept ones)
                if steps is None:
                    advantages = _advantages(cfg, command, scores, seq_kl, G)[rows]
                    advantages = torch.where(unscored, 0.0, advantages)
                else:
                    advantages = _step_advantages(cfg, command, steps, seq_kl, G,
                                                  mask.shape[1])[rows]
                    advantages = torch.where(unscored[:, None], 0.0, advantages)
            # 4. optimise
            if command == "grpo":
                out_ = group_policy_loss(logprobs, old, advantages, mask,
                                         loss_type=cfg.loss_type,
                                         importance_level=cfg.importance_level,
                                         clip_low=cfg.clip_range, clip_high=cfg.clip_range_high,
                                         kl_coef=cfg.beta, ref_logprobs=ref,
                                         max_completion_length=cfg.max_new_tokens)
                loss, extra = out_.loss, {"policy/clipfrac": out_.clipfrac.item()}
            else:
                loss, extra = rloo_loss(logprobs, advantages, mask), {}
            yield loss, {f"loss/{command}": loss.item(), **metrics, **extra}

    tracker = tensorboard(s.output.work / "tb", command)
    with tracker:
        result = optimise(s.policy, train_hparams(cfg), s.output.checkpointer(cfg.checkpoint_every),
                          losses, on_step=tracker.wrap(s.progress(progress and
                                                                  progress(command, cfg.steps))),
                          evaluate=lambda step: s.evaluate(step, tracker),
                          items_per_step=("throughput/completions_per_s", cfg.batch_size * G),
                          engine=s.engine)
    return s.finish(result)
