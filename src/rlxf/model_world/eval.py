"""Stage `eval` in a model world: the trained policy against the [world] model (its SFT model)
on the world's held-out prompts, measured by the library `rlxf eval` uses
(eval/policy_vs_reference.py): the proxy reward model and the gold as rewards, exact KL, length,
distinct-n, entropy and the probe battery, each with its interval and the paired difference.
Written as `rlxf eval` writes RUN/eval/ (tune/eval_run.write_artifacts), so the audit reads a
model world's eval and an `rlxf eval` run the same way (audit/real_eval.py)."""

from __future__ import annotations

from ..eval.policy_vs_reference import EvalOptions, evaluate
from ..rewards.combine import RewardSources
from ..stages.context import StageContext
from ..tune.common import load_model_tokenizer
from ..tune.eval_run import headline, write_artifacts
from ..tune.prompts import load_prompts
from .reward import MODEL
from .world import HELDOUT, sft_model, world_meta


def _load(path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path).eval().requires_grad_(False)


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.eval
    meta = world_meta(ctx.run)
    reference_dir, policy_dir = sft_model(ctx.run), ctx.run.stage_dir("policy") / MODEL
    proxy = ctx.run.stage_dir("reward") / MODEL
    rows = load_prompts(ctx.run.stage_dir("world") / HELDOUT)
    options = EvalOptions(samples_per_prompt=cfg.samples_per_prompt,
                          temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                          seed=ctx.seed)
    report = ctx.progress("eval", 1)
    result = evaluate(_load(policy_dir), _load(reference_dir), load_model_tokenizer(reference_dir),
                      rows, rewards=RewardSources([str(proxy)]),
                      gold=RewardSources([meta["gold"]]), options=options)
    write_artifacts(ctx.out, result)
    report(1, {})
    return {"counts": result.counts, "metrics": headline(result.metrics)}
