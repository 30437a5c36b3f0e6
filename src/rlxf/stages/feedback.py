"""Stage `feedback`: pairs of SFT samples on training prompts, each judged by `overlap`
simulated annotators. Every judgement is stored as a canonical record (feedback/feedback.jsonl),
so disagreement is kept, not averaged away; quality control measures agreement, each
annotator's reliability, aggregations, and looks for poisoners without being told who they are."""

from __future__ import annotations

import random
from collections import defaultdict

from ..feedback.poisoning import detect_flippers, precision_recall
from ..feedback.quality import (annotator_reliability, dawid_skene, items_of, krippendorff_alpha,
                                majority, raw_agreement)
from ..feedback.simulated import build_pool, label_comparisons
from ..models.build import load_causal_lm
from ..models.generate import sample_responses
from ..rundir import atomic_write_json, write_jsonl
from ..world.corpus import sample_family_balanced
from ..world.judge import score
from .context import StageContext


def _gold_choice(world, prompt, a: str, b: str) -> str | None:
    ua = score(prompt, a, world.kb).utility(world.weights)
    ub = score(prompt, b, world.kb).utility(world.weights)
    return None if abs(ua - ub) < 1e-9 else "a" if ua > ub else "b"


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.feedback
    world = ctx.load_world()
    policy = load_causal_lm(ctx.model_dir("sft"))
    rng = ctx.rng("feedback")
    # Oversample: identical pairs carry no preference and are dropped (and counted).
    prompts = sample_family_balanced(world.train, 2 * cfg.n_comparisons, rng)
    trigger_rng = random.Random(f"{ctx.seed}:trigger")
    prompts = [p.with_trigger(world.trigger) if trigger_rng.random() < cfg.trigger_rate else p
               for p in prompts]
    texts = sample_responses(policy, world.tokenizer, [p.text for p in prompts for _ in (0, 1)],
                             temperature=cfg.temperature,
                             max_new_tokens=ctx.config.eval.max_new_tokens, seed=ctx.seed)
    pairs, identical = [], 0
    for i, p in enumerate(prompts):
        a, b = texts[2 * i], texts[2 * i + 1]
        if a == b:
            identical += 1
        elif len(pairs) < cfg.n_comparisons:
            pairs.append((p, a, b))
    pool = build_pool(cfg, ctx.seed)
    records = label_comparisons(pairs, pool, cfg.overlap, world.kb, ctx.seed)
    write_jsonl(ctx.out / "feedback.jsonl", [r.to_json() for r in records])
    items = items_of(records)
    item_ids, labels = list(items), list(items.values())

    # Quality control. In the lab every item has a gold answer, so each annotator's accuracy
    # is measured on all their items (a real project mixes in a few gold items instead).
    gold = [_gold_choice(world, p, a, b) for p, a, b in pairs]
    reliability = annotator_reliability(labels)
    gold_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g, item in zip(gold, labels):
        for j in item:
            if g is not None:
                gold_hits[j["annotator"]][0] += j["choice"] == g
                gold_hits[j["annotator"]][1] += 1
    flags = detect_flippers([p.text for p, _, _ in pairs], labels)
    flagged = {f.annotator for f in flags}
    poisoners = {a.id for a in pool if a.poisoner}
    precision, recall = precision_recall(flagged, poisoners)
    clean = {a.id for a in pool} - poisoners
    annotators = []
    for a in pool:
        annotators.append({"id": a.id, "group": a.group, "poisoner": a.poisoner,
                           **a.params.model_dump(exclude={"name", "count", "poisoners"}),
                           **reliability.get(a.id, {"n_judgements": 0}),
                           "accuracy/gold": _rate(*gold_hits[a.id]),
                           "flagged": a.id in flagged})
    atomic_write_json(ctx.out / "annotators.json", annotators)
    atomic_write_json(ctx.out / "flags.json", [f.to_json() for f in flags])

    majority_labels = [majority(item) for item in labels]
    ds = dawid_skene(labels, item_ids)
    accuracy = {}
    for name, agg in (("majority", majority_labels), ("dawid_skene", [ds.get(i) for i in item_ids])):
        judged = [(x, g) for x, g in zip(agg, gold) if g is not None and x in ("a", "b")]
        accuracy[f"aggregation/{name}_accuracy_gold"] = _rate(sum(x == g for x, g in judged),
                                                               len(judged))
    groups = {}
    for g in sorted({a.group for a in pool}):
        within = [[j for j in item if j["group"] == g] for item in labels]
        groups[g] = {"n_judgements": sum(map(len, within)),
                     "n_annotators": sum(a.group == g for a in pool),
                     "agreement/raw": raw_agreement(within)}
    return {"counts": {"comparisons": len(labels), "judgements": len(records),
                       "annotators": len(pool), "dropped_identical_pairs": identical,
                       "majority_ties": sum(m is None for m in majority_labels),
                       "triggered_comparisons": sum(p.triggered for p, _, _ in pairs),
                       "poisoners": len(poisoners), "flagged": len(flagged)},
            "metrics": {"agreement/raw": raw_agreement(labels),
                        "agreement/krippendorff_alpha": krippendorff_alpha(labels),
                        **accuracy,
                        "poisoning/precision": precision, "poisoning/recall": recall,
                        "poisoning/false_positive_rate": _rate(len(flagged & clean), len(clean)),
                        "groups": groups}}
