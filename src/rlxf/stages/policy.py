"""Stage `policy`: the SFT model (also the frozen reference) optimised by `[policy] algorithm` --
the DPO family and KTO on the feedback, GRPO / RLOO against a reward (the reward ensemble, or
the AI judge online) -- measuring proxy reward, gold utility and KL to SFT as it goes
(over-optimisation). Each algorithm has one function below; `run` picks it."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from statistics import mean

from ..eval.measure import measure
from ..feedback.record import read_records
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..models.tokenizer import decode_response, prompt_ids, response_ids
from ..rundir import atomic_write_json
from ..train import reward as rm
from ..train.dpo import PAIR_ALGORITHMS, reference_logprobs, train_dpo
from ..train.group_rl import ensemble_reward, train_group_rl
from ..train.kto import reference_example_logprobs, train_kto
from ..train.loop import Checkpointer
from ..world.corpus import sample_family_balanced
from .context import StageContext
from .reward import preference_pairs


def _dpo_family(ctx: StageContext, world, policy, reference, reward_model, evaluate):
    cfg, pad = ctx.config.policy, world.tokenizer.pad_token_id
    train, heldout = preference_pairs(ctx, world)
    pairs = [pair for _, pair in train + heldout]  # DPO learns from every labelled comparison
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, pad)
    result = train_dpo(policy, pairs, ref_chosen, ref_rejected, cfg, pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                       ctx.progress(f"policy ({cfg.algorithm})", cfg.steps), evaluate)
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
    train, heldout = preference_pairs(ctx, world)
    pairs = [pair for _, pair in train + heldout]
    return ([(p, c, True) for p, c, _ in pairs] + [(p, r, False) for p, _, r in pairs],
            "comparisons (chosen: desirable, rejected: undesirable)")


def _kto(ctx: StageContext, world, policy, reference, reward_model, evaluate):
    cfg, pad = ctx.config.policy, world.tokenizer.pad_token_id
    examples, source = kto_examples(ctx, world)
    ref_logps = reference_example_logprobs(reference, examples, pad)
    result = train_kto(policy, reference, examples, ref_logps, cfg, pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                       ctx.progress("policy (kto)", cfg.steps), evaluate)
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


def harm_cost_fn(ctx: StageContext, pad: int):
    """Safe RL's cost: the negated harmless head of the aspect reward model (higher = more
    harmful). Config validation guarantees [reward] aspects is on before this runs."""
    try:
        from ..models.aspects import load_aspect_model  # the aspect heads ([reward] aspects)
    except ImportError as e:
        raise RuntimeError("[policy.safe] needs the aspect reward model (rlxf.models.aspects."
                           "load_aspect_model), which this build does not have") from e
    model = load_aspect_model(ctx.run.stage_dir("reward"))
    return lambda prompts, responses: [-h for h in model.score(prompts, responses,
                                                               pad)["harmless"]]


def _group_rl(ctx: StageContext, world, policy, reference, reward_model, evaluate):
    cfg, tok = ctx.config.policy, world.tokenizer
    pad = tok.pad_token_id
    judge_stats: dict = {}
    if cfg.reward == "ai_judge":
        reward_fn = judge_reward_fn(ctx, world, judge_stats)
    else:
        def reward_fn(prompts, responses):
            return ensemble_reward([rm.score(m, prompts, responses, pad)
                                    for m in reward_model.models],
                                   cfg.reward, cfg.uncertainty_penalty)
    cost_fn = harm_cost_fn(ctx, pad) if cfg.safe.cost_threshold is not None else None
    prompts = [prompt_ids(tok, p.text) for p in world.train]
    result = train_group_rl(policy, reference, prompts, reward_fn, cfg, pad, tok.eos_token_id,
                            ctx.config.eval.max_new_tokens, ctx.seed,
                            Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                            ctx.progress(f"policy ({cfg.algorithm})", cfg.steps), evaluate,
                            cost_fn=cost_fn)
    return result, {"train_prompts": len(prompts), **judge_stats}


TRAINERS = {**{a: _dpo_family for a in PAIR_ALGORITHMS}, "kto": _kto,
            "grpo": _group_rl, "rloo": _group_rl}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.policy
    world = ctx.load_world()
    reference = load_causal_lm(ctx.model_dir("sft"))
    policy = load_causal_lm(ctx.model_dir("sft"))
    reward_model = RewardEnsemble.load(ctx.run.stage_dir("reward"))
    eval_prompts = sample_family_balanced(world.heldout, cfg.eval_prompts,
                                          random.Random(f"{ctx.seed}:policy-eval"))

    def evaluate(step: int) -> dict:
        # Same prompts and sampling seed at every step: common random numbers make the
        # curve's differences reflect the policy, not the draw.
        m = measure(policy, prompts=eval_prompts, world=world, sft_model=reference,
                    reward_model=reward_model, samples_per_prompt=1,
                    temperature=ctx.config.eval.temperature,
                    max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed)["metrics"]
        return {k: m[k] for k in ("reward/proxy", "gold/utility", "kl/to_sft",
                                  "length/tokens", "rate/sycophancy", "rate/flattery")}

    result, counts = TRAINERS[cfg.algorithm](ctx, world, policy, reference, reward_model,
                                             evaluate)
    history = result.pop("history")
    policy.save_pretrained(ctx.out / "model")
    world.tokenizer.save_pretrained(ctx.out / "model")
    atomic_write_json(ctx.out / "history.json", history)
    return {"counts": {**counts, "eval_prompts": len(eval_prompts),
                       "eval_points": len(history)},
            "metrics": result}
