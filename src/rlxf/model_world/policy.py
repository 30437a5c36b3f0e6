"""Stage `policy` in a model world: the [world] model optimised by the real-model RL code
(`rlxf grpo|rloo|ppo`, tune/rl.py, tune/rl_ppo.py) against the proxy reward model, on the
world's training prompts, measured at every eval point on its held-out prompts. Each point
adds to the recipe's own measurements the gold's mean score and the gold-free signals the
over-optimisation alarm reads (reward-length correlation, flattery and anthropomorphic rates by
probes/text_features.py), and is written to policy/history.json in the lab's history format
(reward/proxy, gold/utility, kl/to_sft, ...), so the audit's over-optimisation section and Gao
fits read it as they read the lab's."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import TuneGroupRLConfig, TunePPOConfig
from ..eval.metrics import reward_length_correlation
from ..probes.text_features import features
from ..rewards.batch import RewardBatch
from ..rewards.combine import RewardSources, Scored
from ..rundir import atomic_write_json
from ..stages.context import StageContext
from ..tune.common import TuneError
from .reward import MODEL, train_in_checkpoint, training_record, tune_config
from .world import PROMPTS, sft_model, world_meta

# the RL recipe's eval keys -> the lab history's (stages/policy.py HISTORY_KEYS)
LAB_KEYS = {"reward/mean": "reward/proxy", "gold/mean": "gold/utility",
            "kl/to_reference": "kl/to_sft"}


def rl_config(ctx: StageContext):
    """`rlxf grpo|rloo|ppo`'s options from [policy] (its group or ppo table), [eval] (sampling)
    and [world] (the held-out share, so the recipe's split is the world stage's)."""
    c = ctx.config
    p = c.policy
    common = dict(section=p, max_new_tokens=c.eval.max_new_tokens,
                               temperature=c.eval.temperature,
                               eval_fraction=c.world.heldout_fraction, eval_every=p.eval_every,
                               eval_samples=c.eval.samples_per_prompt)
    if p.algorithm == "ppo":
        return tune_config(ctx, TunePPOConfig, ppo=p.ppo, **common)
    g = p.group
    return tune_config(ctx, TuneGroupRLConfig, group_size=g.group_size, beta=g.kl_coef,
                       clip_range=g.clip_range, updates_per_rollout=g.updates_per_rollout,
                       **common)


def check_prompts_fit(model_dir: Path, prompts: Path, cfg) -> None:
    """Every prompt leaves room for max_new_tokens in the model's context. The recipe would
    skip the others, and its held-out split would then differ from the world stage's."""
    from transformers import AutoConfig

    from ..models.build import load_tokenizer
    from ..models.chat import chat_format
    from ..rewards.encoding import prompt_ids
    from ..tune.common import context_limit
    from ..tune.prompts import load_prompts

    class _Model:  # context_limit reads only the config
        config = AutoConfig.from_pretrained(model_dir)
    limit = context_limit(_Model, cfg.max_length) - cfg.max_new_tokens
    chat = chat_format(load_tokenizer(model_dir))
    too_long = [r.where for r in load_prompts(prompts) if len(prompt_ids(chat, r.prompt)) > limit]
    if too_long:
        raise TuneError(f"{', '.join(too_long[:5])}{' ...' if len(too_long) > 5 else ''}: "
                        f"{len(too_long)} prompt(s) leave no room for [eval] max_new_tokens "
                        f"({cfg.max_new_tokens}) in the model's context of {limit + cfg.max_new_tokens} "
                        "tokens; shorten or remove them from [world] prompts")


def eval_signals(gold: RewardSources):
    """The measurements each eval point adds: the gold's mean score over the held-out samples
    (those it scored), and the gold-free over-optimisation signals."""
    def extra(batch: RewardBatch, scored: Scored) -> dict:
        judged = [g for g in gold(batch).total if g == g]  # NaN: the gold gave no verdict
        f = [features(t) for t in batch.texts]
        return {"gold/mean": sum(judged) / len(judged) if judged else None,
                "gold/scored_share": len(judged) / len(batch),
                "reward/length_correlation": reward_length_correlation(batch.texts,
                                                                       scored.total),
                "rate/flattery": sum(x["flattery"] for x in f) / len(f),
                "rate/anthropomorphic": sum(x["anthro"] for x in f) / len(f)}
    return extra


def lab_history(history: list[dict]) -> list[dict]:
    return [{LAB_KEYS.get(k, k): v for k, v in point.items()} for point in history]


def run(ctx: StageContext) -> dict:
    from ..tune.rl import run_group_rl
    from ..tune.rl_ppo import run_ppo
    cfg = ctx.config.policy
    meta = world_meta(ctx.run)
    model_dir, prompts = sft_model(ctx.run), ctx.run.stage_dir("world") / PROMPTS
    proxy = ctx.run.stage_dir("reward") / MODEL
    tune_cfg = rl_config(ctx)
    check_prompts_fit(model_dir, prompts, tune_cfg)
    extra = eval_signals(RewardSources([meta["gold"]]))

    def train(out: Path) -> None:
        args = (model_dir, prompts, out, tune_cfg, [str(proxy)], None, ctx.progress)
        if cfg.algorithm == "ppo":
            run_ppo(*args, eval_extra=extra)
        else:
            run_group_rl(cfg.algorithm, *args, eval_extra=extra)

    trained = train_in_checkpoint(ctx, MODEL, train)
    history = lab_history(json.loads((trained / "history.json").read_text()))
    atomic_write_json(ctx.out / "history.json", history)
    heldout = sum(1 for line in open(ctx.run.stage_dir("world") / "heldout.jsonl")
                  if line.strip())
    return {"counts": {"eval_prompts": heldout, "eval_points": len(history),
                       "samples_per_prompt": tune_cfg.eval_samples},
            "metrics": {**training_record(trained)["metrics"], "recipe": f"rlxf {cfg.algorithm} "
                        "(tune/), against the proxy reward model", "history": history}}
