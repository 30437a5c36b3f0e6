"""Stage `policy`: optimise the SFT model (also the frozen reference) against the feedback, with
the algorithm `[policy] algorithm` names, measuring proxy reward, gold utility and KL to SFT as
it goes (over-optimisation):

- dpo: Direct Preference Optimisation on the majority-label pairs;
- ppo: PPO on the training prompts against the reward model's proxy score, KL-penalised;
- bon: no training; the policy is SFT + best-of-n against the proxy (the eval stage samples it
  that way), measured once.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from ..eval.measure import measure
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..models.tokenizer import prompt_ids
from ..rundir import atomic_write_json
from ..train.bon import bon_kl
from ..train.dpo import reference_logprobs, train_dpo
from ..train.loop import Checkpointer
from ..train.ppo import PolicyWithValue, train_ppo
from ..world.corpus import sample_family_balanced
from .context import StageContext
from .reward import preference_pairs
from .tracking import Tracker

HISTORY_KEYS = ("reward/proxy", "gold/utility", "kl/to_sft", "length/tokens", "rate/sycophancy",
                "rate/flattery", "rate/anthropomorphic")
BON_FILE = "bon.json"  # in policy/: present when the policy is SFT + best-of-n


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.policy
    world = ctx.load_world()
    reference = load_causal_lm(ctx.model_dir("sft"))
    reward_model = RewardEnsemble.load(ctx.run.stage_dir("reward"))
    eval_prompts = sample_family_balanced(world.heldout, cfg.eval_prompts,
                                          random.Random(f"{ctx.seed}:policy-eval"))

    def measure_on_eval_prompts(policy, best_of: int = 1) -> dict:
        # Same prompts and sampling seed at every step: common random numbers make the
        # curve's differences reflect the policy, not the draw.
        m = measure(policy, prompts=eval_prompts, world=world, sft_model=reference,
                    reward_model=reward_model, samples_per_prompt=1,
                    temperature=ctx.config.eval.temperature,
                    max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed,
                    best_of=best_of)["metrics"]
        return {k: m.get(k) for k in HISTORY_KEYS + ("kl/bon_analytic",) if k in m}

    with Tracker.for_stage(ctx, f"policy-{cfg.algorithm}") as tracker:
        result = ALGORITHMS[cfg.algorithm](ctx, world, reference, reward_model,
                                           measure_on_eval_prompts, tracker)
    history = result.pop("history")
    atomic_write_json(ctx.out / "history.json", history)
    return {"counts": {**result.pop("counts", {}), "eval_prompts": len(eval_prompts),
                       "eval_points": len(history)},
            "metrics": result}


def policy_best_of(policy_dir: Path) -> int:
    """n if the policy in this stage directory is SFT + best-of-n, else 1."""
    path = policy_dir / BON_FILE
    return json.loads(path.read_text())["n"] if path.exists() else 1


def _save(ctx: StageContext, world, model) -> None:
    model.save_pretrained(ctx.out / "model")
    world.tokenizer.save_pretrained(ctx.out / "model")


def _tracked_evaluate(evaluate, tracker):
    def evaluate_and_log(step: int) -> dict:
        point = evaluate(step)
        tracker.log({f"eval/{k}": v for k, v in point.items()}, step)
        return point
    return evaluate_and_log


def run_dpo(ctx, world, reference, reward_model, measure_on, tracker) -> dict:
    cfg = ctx.config.policy
    pad = world.tokenizer.pad_token_id
    train, heldout = preference_pairs(ctx, world)
    pairs = [pair for _, pair in train + heldout]  # DPO learns from every labelled comparison
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, pad)
    policy = load_causal_lm(ctx.model_dir("sft"))
    result = train_dpo(policy, pairs, ref_chosen, ref_rejected, cfg, pad, ctx.seed,
                       Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                       tracker.wrap(ctx.progress("policy (dpo)", cfg.steps)),
                       _tracked_evaluate(lambda step: measure_on(policy), tracker))
    _save(ctx, world, policy)
    return {**result, "counts": {"pairs": len(pairs)}}


def run_ppo(ctx, world, reference, reward_model, measure_on, tracker) -> dict:
    cfg = ctx.config.policy
    tok = world.tokenizer
    # Family-balanced like every other prompt draw: the families differ in size by two orders
    # of magnitude, and PPO should meet every tension.
    pool = sample_family_balanced(world.train, max(len(world.train), cfg.batch_size),
                                  random.Random(f"{ctx.seed}:policy-ppo"))
    prompts = [prompt_ids(tok, p.text) for p in pool]

    def proxy(prompt_tokens, responses):
        return reward_model.score(prompt_tokens, responses, tok.pad_token_id)[0]

    model = PolicyWithValue(load_causal_lm(ctx.model_dir("sft")))
    result = train_ppo(model, reference, prompts, proxy, cfg, pad_id=tok.pad_token_id,
                       eos_id=tok.eos_token_id, max_new_tokens=ctx.config.eval.max_new_tokens,
                       seed=ctx.seed, ckpt=Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                       on_step=tracker.wrap(ctx.progress("policy (ppo)", cfg.steps)),
                       evaluate=_tracked_evaluate(lambda step: measure_on(model.lm), tracker))
    _save(ctx, world, model.lm)
    return {**result, "counts": {"prompts": len(prompts)}}


def run_bon(ctx, world, reference, reward_model, measure_on, tracker) -> dict:
    """No training: measure SFT (step 0) and SFT + best-of-n (step 1) on the eval prompts; the
    policy's model is SFT's, and policy/bon.json tells the eval stage to sample it best-of-n."""
    n = ctx.config.policy.bon_n
    report = ctx.progress(f"policy (bon n={n})", 2)
    history = []
    for step, best_of in ((0, 1), (1, n)):
        point = {"step": step, "best_of": best_of, **measure_on(reference, best_of)}
        tracker.log({f"eval/{k}": v for k, v in point.items() if k != "step"}, step)
        history.append(point)
        report(step + 1, {})
    shutil.copytree(ctx.model_dir("sft"), ctx.out / "model", ignore=shutil.ignore_patterns(
        "README.md"))  # README.md is the SFT's model card, written by the audit
    atomic_write_json(ctx.out / BON_FILE, {"n": n})
    return {"history": history, "bon/n": n, "kl/bon_analytic": bon_kl(n),
            "kl/bon_estimate": history[-1].get("kl/to_sft")}


ALGORITHMS = {"dpo": run_dpo, "ppo": run_ppo, "bon": run_bon}
