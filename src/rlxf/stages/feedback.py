"""Stage `feedback`: pairs of SFT samples on training prompts, judged by simulated annotators
(each pair by `overlap` of them) or by an AI judge with a constitution (RLAIF). Every judgement is
stored as a canonical record (feedback/feedback.jsonl), so disagreement is kept, not averaged
away; quality control measures agreement, each annotator's reliability, aggregations, and looks
for poisoners without being told who they are."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timezone

from ..feedback.agreement import PAIRWISE_LABELS, gwet_ac1
from ..feedback.facts import record_facts
from ..feedback.poisoning import detect_flippers, precision_recall
from ..feedback.quality import (annotator_reliability, bradley_terry_choices, dawid_skene,
                                items_of, krippendorff_alpha, majority, raw_agreement)
from ..feedback.simulated import build_pool, label_comparisons, rate_comparisons
from ..feedback.verification import verification_accuracy
from ..models.build import load_causal_lm
from ..models.sampling import sample_responses
from ..rundir import atomic_write_json, write_jsonl
from ..world.corpus import sample_family_balanced
from ..world.judge import score
from .context import StageContext


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def _gold_choice(world, prompt, a: str, b: str) -> str | None:
    ua = score(prompt, a, world.kb).utility(world.weights)
    ub = score(prompt, b, world.kb).utility(world.weights)
    return None if abs(ua - ub) < 1e-9 else "a" if ua > ub else "b"


def sample_pairs(ctx: StageContext, world) -> tuple[list, int]:
    """(pairs of distinct SFT samples, number of identical pairs dropped)."""
    cfg = ctx.config.feedback
    policy = load_causal_lm(ctx.model_dir("sft"))
    # Oversample: identical pairs carry no preference and are dropped (and counted).
    prompts = sample_family_balanced(world.train, 2 * cfg.n_comparisons, ctx.rng("feedback"))
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
    return pairs, identical


def quality_control(ctx: StageContext, records, prompts: list[str], gold: list[str | None],
                    annotators: list[dict], poisoners: set[str]) -> tuple[dict, dict]:
    """(metrics, counts) of pairwise records whose items are in the order of `prompts` and
    `gold` (gold None: no known answer). Writes annotators.json (each annotator's `annotators`
    entry plus measured reliability) and flags.json (suspected poisoners)."""
    items = items_of(records)
    item_ids, labels = list(items), list(items.values())
    reliability = annotator_reliability(labels)
    gold_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g, item in zip(gold, labels):
        for j in item:
            if g is not None:
                gold_hits[j["annotator"]][0] += j["choice"] == g
                gold_hits[j["annotator"]][1] += 1
    flags = detect_flippers(prompts, labels)
    flagged = {f.annotator for f in flags}
    precision, recall = precision_recall(flagged, poisoners)
    clean = {a["id"] for a in annotators} - poisoners
    atomic_write_json(ctx.out / "annotators.json", [
        {**a, **reliability.get(a["id"], {"n_judgements": 0}),
         "accuracy/gold": _rate(*gold_hits[a["id"]]), "flagged": a["id"] in flagged}
        for a in annotators])
    atomic_write_json(ctx.out / "flags.json", [f.to_json() for f in flags])

    majority_labels = [majority(item) for item in labels]
    ds = dawid_skene(labels, item_ids)
    bt = bradley_terry_choices(labels)
    metrics = {"agreement/raw": raw_agreement(labels),
               "agreement/krippendorff_alpha": krippendorff_alpha(labels),
               "agreement/gwet_ac1": gwet_ac1(labels, PAIRWISE_LABELS),
               "poisoning/precision": precision, "poisoning/recall": recall,
               "poisoning/false_positive_rate": _rate(len(flagged & clean), len(clean))}
    for name, agg in (("majority", majority_labels),
                      ("dawid_skene", [ds.get(i) for i in item_ids]), ("bradley_terry", bt)):
        judged = [(x, g) for x, g in zip(agg, gold) if g is not None and x in ("a", "b")]
        metrics[f"aggregation/{name}_accuracy_gold"] = _rate(sum(x == g for x, g in judged),
                                                             len(judged))
    groups = {}
    for g in sorted({a["group"] for a in annotators}, key=str):
        within = [[j for j in item if j["group"] == g] for item in labels]
        groups[str(g)] = {"n_judgements": sum(map(len, within)),
                          "n_annotators": sum(a["group"] == g for a in annotators),
                          "agreement/raw": raw_agreement(within)}
    metrics["groups"] = groups
    counts = {"annotators": len(annotators),
              "majority_ties": sum(m is None for m in majority_labels),
              "poisoners": len(poisoners), "flagged": len(flagged)}
    return metrics, counts


def pool_json(pool, unused: tuple[str, ...] = ()) -> list[dict]:
    """Each simulated annotator's entry of annotators.json: id, group, poisoner, parameters
    (less the `unused` ones)."""
    return [{"id": a.id, "group": a.group, "poisoner": a.poisoner,
             **a.params.model_dump(exclude={"name", "count", "poisoners", *unused})}
            for a in pool]


def simulated_feedback(ctx: StageContext, world, pairs, gold) -> tuple[list, dict, dict]:
    """(records, metrics, counts) from the simulated pool, with quality control. In the lab
    every item has a gold answer, so each annotator's accuracy is measured on all their items
    (a real project mixes in a few gold items instead)."""
    cfg = ctx.config.feedback
    pool = build_pool(cfg, ctx.seed, world.kb)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {"generator": "rlxf.feedback.simulated", "seed": ctx.seed,
                  "pairs": f"SFT samples at temperature {cfg.temperature}"}
    records = [r.model_copy(update={"created": created,
                                    "provenance": {**provenance, **r.provenance}})
               for r in label_comparisons(pairs, pool, cfg.overlap, world.kb, ctx.seed)]
    metrics, counts = quality_control(ctx, records, [p.text for p, _, _ in pairs], gold,
                                      pool_json(pool), {a.id for a in pool if a.poisoner})
    if any(a.known is not None or a.params.assisted for a in pool):
        metrics.update(verification_accuracy(records, gold))
    if cfg.aspect_ratings:
        ratings = [r.model_copy(update={"created": created, "provenance": {
                       **provenance, "scale": "Likert 1-5 per aspect"}})
                   for r in rate_comparisons(pairs, pool, cfg.overlap, world.kb, ctx.seed)]
        records += ratings
        counts["ratings"] = len(ratings)
    return records, metrics, counts


def human_feedback(ctx: StageContext, world) -> tuple[list, dict, dict, list]:
    """(records, metrics, counts, pairs) from a canonical JSONL file of people's judgements
    (`rlxf annotate export`, `rlxf data import`). Items whose prompt_id is a lab prompt get the
    gold judge's verdict; others have none. Who the poisoners are is unknown."""
    from ..feedback.record import read_records
    # Every record passes through (rankings and ratings to the reward stage, binary labels to
    # KTO, edits and critiques kept, not lost); quality control is on pairs.
    kept = read_records(ctx.config.feedback.records)
    records = [r for r in kept if r.type == "pairwise"]
    first: dict = {}
    for r in records:
        first.setdefault(r.item_id, r)
    pairs, gold = [], []
    for r in first.values():
        prompt = world.find_prompt(r.prompt_id)
        pairs.append((prompt, *r.responses))
        gold.append(_gold_choice(world, prompt, *r.responses) if prompt else None)
    annotators = sorted({(r.annotator.id, r.annotator.group) for r in records}, key=str)
    metrics, counts = quality_control(ctx, records, [r.prompt for r in first.values()], gold,
                                      [{"id": a, "group": g} for a, g in annotators], set())
    return kept, metrics, counts, pairs


def build_judge(ctx: StageContext):
    """The AI judge of [feedback.ai]: a local LM, or an OpenAI-compatible endpoint whose answers
    are cached in RUN/.cache/ai_judge (outside any stage: answers survive a stage rerun)."""
    from ..feedback.ai_judge import LocalLMJudge, OpenAIJudge
    from ..feedback.constitution import load_constitution

    cfg = ctx.config.feedback.ai
    constitution = load_constitution(cfg.constitution)
    if cfg.local_model:
        return LocalLMJudge(constitution, cfg.local_model)
    return OpenAIJudge(constitution, cfg.model, base_url=cfg.base_url,
                       api_key_env=cfg.api_key_env, temperature=cfg.temperature,
                       max_attempts=cfg.max_attempts,
                       cache_dir=ctx.run.root / ".cache" / "ai_judge")


def ai_feedback(ctx: StageContext, world, pairs, gold) -> tuple[list, dict, dict]:
    """(records, metrics, counts) from an AI judge; every pair is asked in both orders."""
    from ..feedback.ai_judge import PairItem, judge_pairs

    cfg = ctx.config.feedback.ai
    judge = build_judge(ctx)
    items = [PairItem(p.text, a, b, item_id=f"c{i:06d}", prompt_id=p.id)
             for i, (p, a, b) in enumerate(pairs)]
    records, stats = judge_pairs(judge, items, workers=cfg.workers)
    gold_of = {f"c{i:06d}": g for i, g in enumerate(gold)}
    judged = [(r, gold_of[r.item_id]) for r in records if not r.tie and gold_of[r.item_id]]
    atomic_write_json(ctx.out / "annotators.json",
                      [{"id": judge.name, "group": "ai", "source": "ai", **judge.provenance()}])
    metrics = {"agreement/raw": None, "agreement/krippendorff_alpha": None,
               "ai_judge/position_bias": stats.position_bias,
               "ai_judge/inconsistency_rate": stats.inconsistency_rate,
               "ai_judge/accuracy_gold": _rate(sum("ab"[r.choice] == g for r, g in judged),
                                               len(judged)),
               "groups": {"ai": {"n_judgements": len(records), "n_annotators": 1,
                                 "agreement/raw": None}}}
    counts = {"annotators": 1, "majority_ties": sum(r.tie for r in records),
              "ai_requests": stats.n_requests, "ai_cache_hits": stats.cache_hits,
              "ai_api_calls": stats.api_calls, "ai_parse_failures": stats.parse_failures,
              "ai_unjudged": stats.n_unjudged}
    return records, metrics, counts


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.feedback
    world = ctx.load_world()
    origin = None  # human feedback: each record's provenance says where its responses came from
    if cfg.source == "human":
        records, metrics, counts, pairs = human_feedback(ctx, world)
        identical = 0
    else:
        origin = f"this run's SFT model (samples at temperature {cfg.temperature:g})"
        pairs, identical = sample_pairs(ctx, world)
        gold = [_gold_choice(world, p, a, b) for p, a, b in pairs]
        source = simulated_feedback if cfg.source == "simulated" else ai_feedback
        records, metrics, counts = source(ctx, world, pairs, gold)
    write_jsonl(ctx.out / "feedback.jsonl", [r.to_json() for r in records])
    metrics["records"] = record_facts(records, origin)  # what the disclosure and cards say
    return {"counts": {"comparisons": len(pairs), "judgements": len(records),
                       "dropped_identical_pairs": identical,
                       "triggered_comparisons": sum(bool(p and p.triggered) for p, _, _ in pairs),
                       **counts},
            "metrics": metrics}
