"""Stage `policy`: the SFT model (also the frozen reference) optimised by `[policy] algorithm`,
measuring proxy reward, gold utility and KL to SFT as it goes (over-optimisation):

- dpo, ipo, cdpo, robust: the DPO family on the majority-label pairs;
- kto: KTO on binary labels (or the comparisons split into desirable / undesirable);
- grpo, rloo: RL with a group baseline against `[policy] reward` (the reward ensemble's mean or
  a conservative version of it, or the AI judge online), optionally under a safety constraint;
- ppo: PPO with a critic against `[policy] reward` (the reward ensemble), KL-penalised;
- bon: no training; the policy is SFT + best-of-n against the proxy (the eval stage samples it
  that way), measured once.

Each algorithm has one function below (TRAINERS); `run` loads the models, measures, tracks every
eval point in TensorBoard and saves the trained policy."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from statistics import mean

from ..eval.measure import measure
from ..feedback.record import read_records
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..models.reward_heads import load_aspect_model
from ..models.tokenizer import decode_response, prompt_ids, response_ids
from ..rundir import atomic_write_json, write_jsonl
from ..train.bon import bon_kl
from ..train.dpo import PAIR_ALGORITHMS, reference_logprobs, train_dpo
from ..train.group_rl import train_group_rl
from ..train.kto import reference_example_logprobs, train_kto
from ..train.loop import Checkpointer
from ..train.ppo import PolicyWithValue, train_ppo
from ..train.reward_data import preference_pairs
from ..world.corpus import sample_family_balanced
from .context import StageContext
from .hparams import train_hparams
from .tracking import Tracker

HISTORY_KEYS = ("reward/proxy", "gold/utility", "kl/to_sft", "length/tokens", "rate/sycophancy",
                "rate/flattery", "rate/anthropomorphic", "world/parse_rate",
                "gold/utility_parsed",
                # gold-free signals of over-optimisation (audit/overopt_alarm.py)
                "reward/uncertainty", "reward/length_correlation")
BON_FILE = "bon.json"  # in policy/: present when the policy is SFT + best-of-n
BON_SAMPLES_FILE = "bon_samples.jsonl"  # in policy/ beside it: SFT's and best-of-n's eval samples


def labelled_pairs(ctx: StageContext, world, records=None) -> list:
    """Every majority-labelled comparison of the feedback, the reward model's train split then
    its held-out split, as (prompt ids, chosen ids, rejected ids)."""
    if records is None:
        records = read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl")
    train, heldout = preference_pairs(records, world.tokenizer, ctx.seed,
                                      ctx.config.reward.heldout_fraction)
    return [pair for _, pair in train + heldout]


def _dpo_family(ctx: StageContext, world, policy, reference, reward_model, evaluate, on_step):
    cfg, pad = ctx.config.policy, world.tokenizer.pad_token_id
    pairs = labelled_pairs(ctx, world)  # DPO learns from every labelled comparison
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, pad)
    result = train_dpo(policy, pairs, ref_chosen, ref_rejected, train_hparams(cfg), pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every), on_step, evaluate)
    return result, {"pairs": len(pairs)}


def kto_examples(ctx: StageContext, world) -> tuple[list, str]:
    """(examples, where their labels came from). Binary records in feedback.jsonl (majority
    label per item; ties dropped) when there are any; otherwise every majority-labelled
    comparison gives two: its chosen response desirable, its rejected one undesirable."""
    tok = world.tokenizer
    records = read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl")
    votes: dict[str, list[bool]] = defaultdict(list)
    first = {}
    for r in records:
        if r.type == "binary":
            votes[r.item_id].append(bool(r.label))
            first.setdefault(r.item_id, r)
    if votes:
        examples = [(prompt_ids(tok, first[i].prompt), response_ids(tok, first[i].responses[0]),
                     sum(v) > len(v) / 2)
                    for i, v in votes.items() if sum(v) != len(v) / 2]
        return examples, "binary records (majority label per item)"
    pairs = labelled_pairs(ctx, world, records)
    return ([(p, c, True) for p, c, _ in pairs] + [(p, r, False) for p, _, r in pairs],
            "comparisons (chosen: desirable, rejected: undesirable)")


def _kto(ctx: StageContext, world, policy, reference, reward_model, evaluate, on_step):
    cfg, pad = ctx.config.policy, world.tokenizer.pad_token_id
    examples, source = kto_examples(ctx, world)
    ref_logps = reference_example_logprobs(reference, examples, pad)
    result = train_kto(policy, reference, examples, ref_logps, train_hparams(cfg), pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every), on_step, evaluate)
    result["kto/label_source"] = source
    return result, {"examples": len(examples),
                    "examples/desirable": sum(d for _, _, d in examples)}


def judge_reward_fn(ctx: StageContext, world, stats: dict):
    """Online RLAIF: the AI judge of [feedback.ai] rates each sample on the constitution's
    aspects (1-5); the reward is their mean, NaN when the answer did not parse. Answers are
    cached in RUN/.cache/ai_judge, so a resumed or rerun stage asks nothing twice."""
    from ..feedback.ai_judge import RatingItem, judge_ratings
    from .feedback import build_judge

    judge, tok = build_judge(ctx), world.tokenizer
    text_of = {tuple(prompt_ids(tok, p.text)): p.text for p in world.train}

    def reward(prompts: list[list[int]], responses: list[list[int]]) -> list[float]:
        items = [RatingItem(text_of[tuple(p)], decode_response(tok, r))
                 for p, r in zip(prompts, responses)]
        records, s = judge_ratings(judge, items, workers=ctx.config.feedback.ai.workers)
        for k in ("n_requests", "cache_hits", "api_calls", "parse_failures"):
            stats[f"ai_judge/{k}"] = stats.get(f"ai_judge/{k}", 0) + getattr(s, k)
        by_item = {r.item_id: mean(r.ratings.values()) for r in records}
        return [by_item.get(f"r{i:06d}", math.nan) for i in range(len(items))]
    return reward


def ensemble_reward_fn(ctx: StageContext, reward_model: RewardEnsemble, tokenizer):
    """The reward ensemble as an RL reward: `[policy] reward` = mean, mean_minus_std or
    worst_case (`conservative_rewards`)."""
    cfg, pad = ctx.config.policy, tokenizer.pad_token_id
    return lambda prompts, responses: reward_model.score_conservative(
        prompts, responses, pad, cfg.reward, cfg.uncertainty_penalty)


def harm_cost_fn(ctx: StageContext, pad: int):
    """Safe RL's cost: the negated harmless head of the aspect reward model (higher = more
    harmful). Config validation guarantees [reward] aspects is on before this runs."""
    model = load_aspect_model(ctx.run.stage_dir("reward"))
    return lambda prompts, responses: [-h for h in model.score(prompts, responses,
                                                               pad)["harmless"]]


def _group_rl(ctx: StageContext, world, policy, reference, reward_model, evaluate, on_step):
    cfg, tok = ctx.config.policy, world.tokenizer
    pad = tok.pad_token_id
    judge_stats: dict = {}
    if cfg.reward == "ai_judge":
        reward_fn = judge_reward_fn(ctx, world, judge_stats)
    else:
        reward_fn = ensemble_reward_fn(ctx, reward_model, tok)
    cost_fn = harm_cost_fn(ctx, pad) if cfg.safe.cost_threshold is not None else None
    prompts = [prompt_ids(tok, p.text) for p in world.train]
    result = train_group_rl(policy, reference, prompts, reward_fn, train_hparams(cfg), pad,
                            tok.eos_token_id, ctx.config.eval.max_new_tokens, ctx.seed,
                            Checkpointer(ctx.ckpt, cfg.checkpoint_every), on_step, evaluate,
                            cost_fn=cost_fn)
    return result, {"train_prompts": len(prompts), **judge_stats}


def _ppo(ctx: StageContext, world, policy, reference, reward_model, evaluate, on_step):
    cfg, tok = ctx.config.policy, world.tokenizer
    # Family-balanced like every other prompt draw: the families differ in size by two orders
    # of magnitude, and PPO should meet every tension.
    pool = sample_family_balanced(world.train, max(len(world.train), cfg.batch_size),
                                  random.Random(f"{ctx.seed}:policy-ppo"))
    prompts = [prompt_ids(tok, p.text) for p in pool]
    model = PolicyWithValue(policy)  # `evaluate` measures `policy`: the same LM
    result = train_ppo(model, reference, prompts, ensemble_reward_fn(ctx, reward_model, tok),
                       train_hparams(cfg), pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                       max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed,
                       ckpt=Checkpointer(ctx.ckpt, cfg.checkpoint_every), on_step=on_step,
                       evaluate=evaluate)
    return result, {"prompts": len(prompts)}


def _bon(ctx: StageContext, world, policy, reference, reward_model, evaluate, on_step):
    """No training: measure SFT (step 0) and SFT + best-of-n (step 1) on the eval prompts; the
    policy's model is SFT's, and policy/bon.json tells the eval stage to sample it best-of-n."""
    n = ctx.config.policy.bon_n
    history, samples = [], []
    for step, best_of in ((0, 1), (1, n)):
        kept: list[dict] = []
        history.append({"step": step, "best_of": best_of, **evaluate(step, best_of, kept)})
        samples += [{"step": step, "best_of": best_of, **s} for s in kept]
        on_step(step + 1, {})
    atomic_write_json(ctx.out / BON_FILE, {"n": n})
    # per prompt, for the sweep's intervals over seeds and prompts (audit/bon_sweep.py)
    write_jsonl(ctx.out / BON_SAMPLES_FILE, samples)
    return ({"history": history, "bon/n": n, "kl/bon_analytic": bon_kl(n),
             "kl/bon_estimate": history[-1].get("kl/to_sft")}, {})


TRAINERS = {**{a: _dpo_family for a in PAIR_ALGORITHMS}, "kto": _kto,
            "grpo": _group_rl, "rloo": _group_rl, "ppo": _ppo, "bon": _bon}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.policy
    world = ctx.load_world()
    reference = load_causal_lm(ctx.model_dir("sft"))
    policy = load_causal_lm(ctx.model_dir("sft"))  # trained in place (bon: left as SFT)
    reward_model = RewardEnsemble.load(ctx.run.stage_dir("reward"))
    eval_prompts = sample_family_balanced(world.heldout, cfg.eval_prompts,
                                          random.Random(f"{ctx.seed}:policy-eval"))

    tok = world.tokenizer
    # safe RL: the cost of the eval samples joins each eval point (the constraint's curve)
    cost_fn = harm_cost_fn(ctx, tok.pad_token_id) if cfg.safe.cost_threshold is not None \
        else None

    with Tracker.for_stage(ctx, f"policy-{cfg.algorithm}") as tracker:
        def evaluate(step: int, best_of: int = 1, keep: list | None = None) -> dict:
            """The eval point's metrics; its samples go into `keep` when given."""
            # Same prompts and sampling seed at every step: common random numbers make the
            # curve's differences reflect the policy, not the draw.
            out = measure(policy, prompts=eval_prompts, world=world, sft_model=reference,
                          reward_model=reward_model, samples_per_prompt=1,
                          temperature=ctx.config.eval.temperature,
                          max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed,
                          best_of=best_of)
            m = out["metrics"]
            if keep is not None:
                keep += out["samples"]
            point = {k: m[k] for k in HISTORY_KEYS + ("kl/bon_analytic",) if k in m}
            if point.get("reward/uncertainty", 0) is None:  # one reward model: no spread
                del point["reward/uncertainty"]
            if cost_fn is not None:
                samples = out["samples"]
                point["cost/eval"] = mean(cost_fn([prompt_ids(tok, s["prompt"]) for s in samples],
                                                  [response_ids(tok, s["response"])
                                                   for s in samples]))
            tracker.log({f"eval/{k}": v for k, v in point.items()}, step)
            return point

        on_step = tracker.wrap(ctx.progress(f"policy ({cfg.algorithm})",
                                            2 if cfg.algorithm == "bon" else cfg.steps))
        result, counts = TRAINERS[cfg.algorithm](ctx, world, policy, reference, reward_model,
                                                 evaluate, on_step)
    history = result.pop("history")
    policy.save_pretrained(ctx.out / "model")
    world.tokenizer.save_pretrained(ctx.out / "model")
    atomic_write_json(ctx.out / "history.json", history)
    return {"counts": {**counts, "eval_prompts": len(eval_prompts),
                       "eval_points": len(history)},
            # the eval points in the ledger too, so `rlxf` can read a run's curve from it alone
            "metrics": {**result, "history": history}}


def policy_best_of(policy_dir: Path) -> int:
    """n if the policy in this stage directory is SFT + best-of-n, else 1."""
    path = policy_dir / BON_FILE
    return json.loads(path.read_text())["n"] if path.exists() else 1
