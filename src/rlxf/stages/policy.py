"""Stage `policy`: DPO from the SFT model (also the frozen reference) on the majority-label
pairs, measuring proxy reward, gold utility and KL to SFT as it goes (over-optimisation)."""

from __future__ import annotations

import random

from ..eval.measure import measure
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..rundir import atomic_write_json
from ..train.dpo import reference_logprobs, train_dpo
from ..train.loop import Checkpointer
from ..world.corpus import sample_family_balanced
from .context import StageContext
from .reward import preference_pairs


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.policy
    world = ctx.load_world()
    pad = world.tokenizer.pad_token_id
    train, heldout = preference_pairs(ctx, world)
    pairs = [pair for _, pair in train + heldout]  # DPO learns from every labelled comparison
    reference = load_causal_lm(ctx.model_dir("sft"))
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, pad)
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

    result = train_dpo(policy, pairs, ref_chosen, ref_rejected, cfg, pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                       ctx.progress("policy (dpo)", cfg.steps), evaluate)
    history = result.pop("history")
    policy.save_pretrained(ctx.out / "model")
    world.tokenizer.save_pretrained(ctx.out / "model")
    atomic_write_json(ctx.out / "history.json", history)
    return {"counts": {"pairs": len(pairs), "eval_prompts": len(eval_prompts),
                       "eval_points": len(history)},
            "metrics": result}
