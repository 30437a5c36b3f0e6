"""Stage `feedback`: pairs of SFT samples on training prompts, each judged by `overlap`
simulated annotators. Every judgement is stored as a canonical record (feedback/feedback.jsonl),
so disagreement is kept, not averaged away."""

from __future__ import annotations

from collections import defaultdict

from ..feedback.quality import items_of, krippendorff_alpha, majority, raw_agreement
from ..feedback.simulated import build_pool, label_comparisons
from ..models.build import load_causal_lm
from ..models.generate import sample_responses
from ..rundir import atomic_write_json, write_jsonl
from ..world.corpus import sample_family_balanced
from .context import StageContext


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.feedback
    world = ctx.load_world()
    policy = load_causal_lm(ctx.model_dir("sft"))
    # Oversample: identical pairs carry no preference and are dropped (and counted).
    prompts = sample_family_balanced(world.train, 2 * cfg.n_comparisons, ctx.rng("feedback"))
    texts = sample_responses(policy, world.tokenizer, [p.text for p in prompts for _ in (0, 1)],
                             temperature=cfg.temperature, max_new_tokens=ctx.config.eval.max_new_tokens,
                             seed=ctx.seed)
    pairs, identical = [], 0
    for i, p in enumerate(prompts):
        a, b = texts[2 * i], texts[2 * i + 1]
        if a == b:
            identical += 1
        elif len(pairs) < cfg.n_comparisons:
            pairs.append((p, a, b))
    pool = build_pool(cfg)
    records = label_comparisons(pairs, pool, cfg.overlap, world.kb, ctx.seed)
    write_jsonl(ctx.out / "feedback.jsonl", [r.to_json() for r in records])
    labels = list(items_of(records).values())
    atomic_write_json(ctx.out / "annotators.json",
                      [{"id": a.id, "group": a.group, **a.params.model_dump()} for a in pool])

    by_group = defaultdict(list)
    for js in labels:
        for j in js:
            by_group[j["group"]].append(j)
    groups = {}
    for g in sorted(by_group):
        within = [[j for j in js if j["group"] == g] for js in labels]
        groups[g] = {"n_judgements": len(by_group[g]),
                     "n_annotators": sum(a.group == g for a in pool),
                     "agreement/raw": raw_agreement(within)}
    ties = sum(majority(js) is None for js in labels)
    return {"counts": {"comparisons": len(labels), "judgements": len(records),
                       "annotators": len(pool), "dropped_identical_pairs": identical,
                       "majority_ties": ties},
            "metrics": {"agreement/raw": raw_agreement(labels),
                        "agreement/krippendorff_alpha": krippendorff_alpha(labels),
                        "groups": groups}}
