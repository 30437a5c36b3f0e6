"""`rlxf grpo` and `rlxf rloo` on a local model directory and a prompt file, read top to bottom:

  0. setup    -- prompts (tune/prompts.py), reward sources (rewards/), model, LoRA; a held-out
                 slice of the prompts for the eval points; then (inputs good) OUT.partial/
  1. rollout  -- `batch_size` training prompts, `group_size` completions each, from the rollout
                 backend (models/rollout_backend.py), stopped at the chat template's end of turn
  2. reward   -- every source on the decoded completions; their weighted sum
  3. advantage-- GRPO: (r - group mean) / group std, batch std or 1; RLOO: leave-one-out (KL in
                 the reward) or REINFORCE++-baseline; DAPO's dynamic sampling drops groups
                 whose rewards are all equal, overlong filtering masks truncated completions
  4. optimise -- GRPO: μ updates of `group_policy_loss` (loss_type, token or sequence ratio,
                 ε_low/ε_high, β·k3); RLOO: one REINFORCE update
The optimizer, schedule, exact checkpoints and eval points are the shared policy loop's
(train/policy_loop.py); the reference is the starting model (with LoRA: the base with adapters
disabled, no second copy)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import torch

from ..config import PolicyConfig, TuneGroupRLConfig
from ..models.build import load_tokenizer
from ..models.chat import chat_format
from ..models.logprobs import group_response_logprobs
from ..models.lora import reference_of
from ..models.rollout_backend import TransformersBackend
from ..rewards.batch import RewardBatch, RewardError
from ..rewards.combine import RewardSources
from ..rewards.encoding import prompt_ids
from ..rundir import atomic_write_json, sha256_file
from ..train.advantages import (batch_scaled_advantages, group_advantages, groups_with_signal,
                                overlong_filtered, rloo_advantages)
from ..train.group_rl import fill_unscored
from ..train.loop import BatchOrder
from ..train.losses import group_policy_loss, rloo_loss
from ..train.policy_loop import optimise
from .common import (Output, TuneError, autocast, check_model_dir, context_limit,
                     disable_dropout, prepare, resolve_precision, save_model,
                     trainable_parameters)
from .prompts import load_prompts, split_heldout
from .rl_card import write_rl_record
from .rl_eval import eval_point, nanmean, response_entropy

Progress = Callable[[str, int], Callable[[int, dict], None]] | None


def _spec_fingerprint(spec: str) -> dict:
    """A function file's content joins the fingerprint: an edited reward function never
    resumes a run it did not start."""
    target = spec.rpartition(":")[0]
    return {"spec": spec, **({"sha256": sha256_file(Path(target))}
                             if target.endswith(".py") and Path(target).is_file() else {})}


def tensorboard(directory: Path, name: str):
    """TensorBoard event files in OUT/tb/ (training metrics every step, every eval point)."""
    from accelerate.tracking import TensorBoardTracker

    from ..stages.tracking import Tracker
    board = TensorBoardTracker(name, directory)
    board.start()
    return Tracker([board])


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


def run_group_rl(command: str, model_dir: Path, prompts_path: Path, out: Path,
                 cfg: TuneGroupRLConfig, rewards: list[str], reward_weights: str | None = None,
                 progress: Progress = None) -> dict:
    started = time.time()
    if command not in ("grpo", "rloo"):
        raise ValueError(f"run_group_rl: command must be grpo or rloo, got {command!r}")
    if command == "rloo" and cfg.updates_per_rollout != 1:
        raise TuneError("rloo is on-policy REINFORCE: updates_per_rollout must be 1 (use grpo "
                        "for several clipped updates per rollout)")
    # 0. setup: every input is read and checked before OUT.partial/ exists
    if out.exists():
        raise TuneError(f"{out}: already exists (choose another --out or remove it)")
    check_model_dir(model_dir)
    rows = load_prompts(prompts_path)
    sources = RewardSources(rewards, reward_weights)
    tok = load_tokenizer(model_dir)
    chat = chat_format(tok)
    from transformers import AutoModelForCausalLM
    policy = AutoModelForCausalLM.from_pretrained(model_dir.resolve())
    limit = context_limit(policy, cfg.max_length) - cfg.max_new_tokens
    encoded = [(r, prompt_ids(chat, r.prompt)) for r in rows]
    too_long = [r.where for r, ids in encoded if len(ids) > limit]
    encoded = [(r, ids) for r, ids in encoded if len(ids) <= limit]
    train, heldout = split_heldout([r for r, _ in encoded], cfg.eval_fraction, cfg.seed)
    ids_of = {id(r): ids for r, ids in encoded}
    if len(train) < 1:
        raise TuneError(f"{prompts_path}: no prompt leaves room for max_new_tokens "
                        f"({cfg.max_new_tokens}) within max_length ({limit + cfg.max_new_tokens})")
    output = Output(out, {"command": command, "model": str(model_dir.resolve()),
                          "prompts": sha256_file(prompts_path),
                          "rewards": [_spec_fingerprint(s) for s in rewards],
                          "reward_weights": sources.weights,
                          "config": cfg.model_dump(mode="json")})
    tracker, last_eval = tensorboard(output.work / "tb", command), {}
    disable_dropout(policy)
    policy = prepare(policy, cfg)
    reference = None
    if cfg.lora is None:
        reference = AutoModelForCausalLM.from_pretrained(model_dir.resolve()).eval()
        disable_dropout(reference)
        reference.requires_grad_(False)
    pad = tok.pad_token_id
    backend = TransformersBackend(cfg.max_new_tokens, cfg.temperature, cfg.top_p, pad,
                                  tuple(chat.stop_ids))
    G, precision = cfg.group_size, resolve_precision(cfg.precision)

    @torch.no_grad()
    def ref_logprobs(prompts, responses):
        with reference_of(policy) if reference is None else contextlib.nullcontext():
            return group_response_logprobs(reference or policy, prompts, responses, pad)

    def score(batch_rows, samples, k: int):
        repeated = [r for r in batch_rows for _ in range(k)]
        batch = RewardBatch([r.prompt for r in repeated],
                            [chat.decode(ids) for ids in samples.responses],
                            samples.responses, [r.fields for r in repeated],
                            [r.where for r in repeated], samples.truncated)
        return sources(batch)

    order = BatchOrder(len(train), cfg.batch_size, cfg.seed)

    def losses(model, step: int):
        # 1. rollout (the same seed on a resumed run)
        batch_rows = [train[i] for i in order.indices(step)]
        prompts = [ids_of[id(r)] for r in batch_rows]
        samples = backend.sample(policy, prompts, G, seed=cfg.seed * 100_003 + step)
        # 2. reward
        scored = score(batch_rows, samples, G)
        raw = torch.tensor(scored.total, dtype=torch.float32)
        unscored = torch.isnan(raw)
        scores = fill_unscored(raw.view(-1, G)).flatten()
        ref, mask = ref_logprobs(prompts, samples.responses)
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
        rows_kept = keep.repeat_interleave(G)
        prompts = [p for p, k in zip(prompts, keep.tolist()) if k]
        responses = [r for r, k in zip(samples.responses, rows_kept.tolist()) if k]
        ref, mask, unscored = ref[rows_kept], mask[rows_kept], unscored[rows_kept]
        model.train()
        for update in range(cfg.updates_per_rollout):
            logprobs = group_response_logprobs(model, prompts, responses, pad)[0]
            if update == 0:
                # π_old is the policy that sampled, unchanged since: this forward's log-probs
                old = logprobs.detach()
                seq_kl = ((old - ref) * mask).sum(1)
                metrics["kl/train"] = seq_kl.mean().item()
                # 3. advantages within each prompt's group (all rows, then the kept ones)
                full_kl = torch.zeros(len(rows_kept))
                full_kl[rows_kept] = seq_kl
                advantages = _advantages(cfg, command, scores, full_kl, G)[rows_kept]
                advantages = torch.where(unscored, 0.0, advantages)
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

    eval_prompts = [ids_of[id(r)] for r in heldout]

    @torch.no_grad()
    def evaluate(step: int) -> dict:
        if not heldout:
            return {}
        samples = backend.sample(policy, eval_prompts, cfg.eval_samples, seed=cfg.seed + 7919)
        scored = score(heldout, samples, cfg.eval_samples)
        logp, mask = group_response_logprobs(policy, eval_prompts, samples.responses, pad)
        ref, _ = ref_logprobs(eval_prompts, samples.responses)
        repeated = [p for p in eval_prompts for _ in range(cfg.eval_samples)]
        point = eval_point(sources, scored, samples.responses, samples.truncated, logp, ref,
                           mask.float(), response_entropy(policy, repeated, samples.responses,
                                                          pad))
        tracker.log({f"eval/{k}": v for k, v in point.items() if v is not None}, step)
        last_eval.update(point)
        return point

    def report(step: int, metrics: dict) -> None:  # the progress bar shows the held-out reward
        if show:
            shown = last_eval.get("reward/mean")
            show(step, {**metrics, **({"eval/reward": shown} if shown is not None else {})})

    loop_cfg = PolicyConfig(**cfg.model_dump(include={"steps", "lr", "warmup_steps",
                                                      "checkpoint_every", "eval_every"}),
                            batch_size=cfg.batch_size, eval_prompts=8)
    show = progress and progress(command, cfg.steps)
    with tracker, autocast(precision):
        result = optimise(policy, loop_cfg, output.checkpointer(cfg.checkpoint_every), losses,
                          on_step=tracker.wrap(report), evaluate=evaluate,
                          items_per_step=("throughput/completions_per_s", cfg.batch_size * G))
    history = result.pop("history")
    atomic_write_json(output.work / "history.json", history)
    params = trainable_parameters(policy)
    saved = save_model(policy, tok, output.work, cfg.merge)
    counts = {"file": str(prompts_path), "sha256": sha256_file(prompts_path),
              "prompts": len(rows), "train": len(train), "heldout": len(heldout),
              "skipped_too_long": len(too_long)}
    record = write_rl_record(output.work, output.out.name, command, model_dir, cfg, counts,
                             sources.describe(), {**result, **params}, history, saved,
                             chat.kind, backend.name, started)
    return {**record, "out": str(output.finish()),
            "heldout_reward": [nanmean([history[0].get("reward/mean")]),
                               nanmean([history[-1].get("reward/mean")])] if history else None}


__all__ = ["run_group_rl", "RewardError"]
