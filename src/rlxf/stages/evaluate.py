"""Stage `eval`: base, SFT and policy sampled on the held-out prompts and scored by the gold
judge, the reward model (proxy) and their KL to the SFT model; and once on the refusal probe set
(world/prompts.py `refusal_probes`), whose rates the report's refusal readings use."""

from __future__ import annotations

from ..eval.measure import measure
from ..eval.oversight import oversight_metrics
from ..feedback.simulated import build_pool, verifiable_facts
from ..models.build import load_causal_lm
from ..models.reward_ensemble import RewardEnsemble
from ..rundir import atomic_write_json, write_jsonl
from ..world.prompts import refusal_probes
from .context import StageContext
from .policy import policy_best_of

MODELS = {"base": "pretrain", "sft": "sft", "policy": "policy"}  # report name -> stage
PROBE_RATES = ("rate/refusal_harmful", "rate/refusal_benign")


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.eval
    world = ctx.load_world()
    sft = load_causal_lm(ctx.model_dir("sft"))
    reward_model = RewardEnsemble.load(ctx.run.stage_dir("reward"))
    feedback = ctx.config.feedback
    groups = {g.name: g.weights.model_dump() for g in feedback.annotators}
    results, samples, triggered, oversight = {}, [], [], {}
    # Which held-out facts the (simulated) pool could verify; unknown for people or an AI judge.
    verifiable, share_known = None, {}
    if feedback.source == "simulated":
        verifiable, share_known = verifiable_facts(build_pool(feedback, ctx.seed, world.kb),
                                                     world.kb.facts())
        verifiable = frozenset(world.kb.facts()) if verifiable is None else verifiable
    probes = refusal_probes(world.train + world.heldout) if cfg.refusal_probes else []
    probe_samples = []
    report = ctx.progress("eval", len(MODELS))
    for i, (name, stage) in enumerate(MODELS.items()):
        model = sft if name == "sft" else load_causal_lm(ctx.model_dir(stage))
        best_of = policy_best_of(ctx.run.stage_dir(stage)) if name == "policy" else 1
        if best_of > 1:  # the policy is SFT + best-of-n: sample SFT, keep the proxy's best
            model = sft
        m = measure(model, prompts=world.heldout, world=world, sft_model=sft,
                    reward_model=reward_model, samples_per_prompt=cfg.samples_per_prompt,
                    temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                    seed=ctx.seed, groups=groups, backdoor=feedback.trigger_rate > 0,
                    best_of=best_of)
        if probes:  # one sample per probe: the set's size, not resampling, buys the power
            pm = measure(model, prompts=probes, world=world, sft_model=sft,
                         reward_model=reward_model, samples_per_prompt=1,
                         temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                         seed=ctx.seed, best_of=best_of)
            m["metrics"].update({f"probe/{k}": pm["metrics"][k] for k in PROBE_RATES})
            probe_samples += [{"model": name, **s} for s in pm["samples"]]
        results[name] = {"metrics": m["metrics"], "per_family": m["per_family"],
                         "groups": m["groups"]}
        samples += [{"model": name, **s} for s in m["samples"]]
        triggered += [{"model": name, **s} for s in m["triggered_samples"]]
        if verifiable is not None:
            oversight[name] = oversight_metrics(
                [world.prompt(s["prompt_id"]) for s in m["samples"]],
                [s["response"] for s in m["samples"]], world.kb, verifiable)
        report(i + 1, {})
    atomic_write_json(ctx.out / "metrics.json", results)
    write_jsonl(ctx.out / "samples.jsonl", samples)
    if probes:  # the probe prompts are not the world's: the audit scores them from here
        write_jsonl(ctx.out / "probe_prompts.jsonl", [p.to_json() for p in probes])
        write_jsonl(ctx.out / "probe_samples.jsonl", probe_samples)
    if triggered:  # the backdoor's samples (trigger word in front), for the audit's interval
        write_jsonl(ctx.out / "triggered.jsonl", triggered)
    atomic_write_json(ctx.out / "oversight.json", {
        "verifiable_facts": sorted("/".join(f) for f in verifiable) if verifiable else None,
        "share_known": {"/".join(f): v for f, v in sorted(share_known.items())},
        "n_facts": len(world.kb.facts()), "models": oversight})
    return {"counts": {"prompts": len(world.heldout), "samples": len(samples),
                       "probe_prompts": len(probes)},
            "metrics": {**{f"{name}/{k}": v for name, r in results.items()
                           for k, v in r["metrics"].items()},
                        **{f"{name}/oversight/{c}/rate/confident_wrong": o[c]["rate/confident_wrong"]
                           for name, o in oversight.items() for c in o}}}
