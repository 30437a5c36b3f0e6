"""Stage `finetune` (only with [finetune] enabled): the alignment tax of later fine-tuning. The
RLHF'd policy is fine-tuned (all weights) on demonstrations of one narrow prompt family, as a
user tuning a chat model for their domain would, then sampled on every held-out prompt exactly as
eval sampled the policy (same prompts, samples per prompt, temperature and seed). `before` is
eval's policy row, read from eval/metrics.json, so it is the report's own policy number."""

from __future__ import annotations

import json

from ..eval.measure import measure
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..rundir import atomic_write_json, write_jsonl
from ..world.corpus import demonstration
from ..world.grammar import render
from .context import StageContext
from .sft import tune_on_demonstrations


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.finetune
    if not cfg.enabled:
        return {"counts": {"enabled": 0}, "metrics": {}}
    world = ctx.load_world()
    tok, rng = world.tokenizer, ctx.rng("finetune")
    domain = [p for p in world.train if p.family == cfg.family]
    if not domain:
        raise ValueError(f"[finetune] family = {cfg.family!r}: no training prompts of that "
                         "family in this world")
    # 1. the narrow domain set: demonstrations of one family only
    demos = [(p, render(demonstration(p, world.kb, world.weights, cfg.demonstrator_error, rng)))
             for p in (rng.choice(domain) for _ in range(cfg.n_demonstrations))]

    # 2. full fine-tuning of the policy, with the SFT stage's loss (response tokens only)
    model, result = tune_on_demonstrations(ctx, tok, demos, ctx.model_dir("policy"), cfg,
                                           "finetune")

    # 3. the tuned model on every held-out prompt, measured as eval measured the policy
    ev = ctx.config.eval
    m = measure(model, prompts=world.heldout, world=world,
                sft_model=load_causal_lm(ctx.model_dir("sft")),
                reward_model=RewardEnsemble.load(ctx.run.stage_dir("reward")),
                samples_per_prompt=ev.samples_per_prompt, temperature=ev.temperature,
                max_new_tokens=ev.max_new_tokens, seed=ctx.seed)
    before = json.loads((ctx.run.stage_dir("eval") / "metrics.json").read_text())["policy"]
    atomic_write_json(ctx.out / "metrics.json", {
        "family": cfg.family,
        "before": {"metrics": before["metrics"], "per_family": before["per_family"]},
        "after": {"metrics": m["metrics"], "per_family": m["per_family"]}})
    write_jsonl(ctx.out / "samples.jsonl", m["samples"])
    return {"counts": {"demonstrations": len(demos), "domain_prompts": len(domain),
                       "samples": len(m["samples"])},
            "metrics": {**result, **{f"after/{k}": v for k, v in m["metrics"].items()
                                     if k.startswith("gold/")}}}
