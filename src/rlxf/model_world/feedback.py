"""Stage `feedback` in a model world: pairs of the model's own samples on training prompts,
scored by the gold SPEC and labelled by the simulated annotator pools of [feedback]: each
annotator perceives the gold score plus their biases on the text's surface features
(probes/text_features.py), with their Bradley-Terry noise and carelessness. Every judgement is
a canonical record (feedback/feedback.jsonl), so agreement, quality control and the
disclosure read it as they read the lab's; feedback/gold.jsonl keeps each pair's gold scores
and features."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from ..data.formats import TRL_ROW
from ..feedback.facts import record_facts
from ..feedback.record import Message
from ..feedback.simulated import ScoredPair, build_pool, label_scored_pairs
from ..probes.text_features import features
from ..rewards.batch import RewardBatch, messages_of
from ..rundir import write_jsonl
from ..stages.context import StageContext
from ..stages.feedback import pool_json, quality_control
from .world import TRAIN, sft_model, world_meta

# annotator parameters a model world does not use (its gold is one score, not 3H or facts)
LAB_ONLY = ("weights", "knows", "assisted", "critique_accuracy")
SAMPLE_CHUNK = 32  # prompts sampled at once (two responses each): bounded memory, progress


def load_sampler(model_dir: Path, max_new_tokens: int, temperature: float):
    """(model, tokenizer, chat format, backend) of a model directory, for sampling."""
    from transformers import AutoModelForCausalLM

    from ..models.build import load_tokenizer
    from ..models.chat import chat_format
    from ..models.rollout_backend import TransformersBackend
    tok = load_tokenizer(model_dir)
    chat = chat_format(tok)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    backend = TransformersBackend(max_new_tokens, temperature, 1.0, tok.pad_token_id,
                                  tuple(chat.stop_ids))
    return model, tok, chat, backend


def prompt_id(row, index: int) -> str:
    """The row's own `id` field when it has one, else its position in the training split."""
    return str(row.fields.get("id", f"train/{index}"))


def sample_pairs(ctx: StageContext, rows, model, chat, backend) -> tuple[list, int]:
    """([(row index, a, b, truncated a, truncated b)] distinct pairs, identical pairs dropped).
    Twice the needed prompts are drawn, as in the lab: identical pairs carry no preference."""
    from ..rewards.encoding import prompt_ids
    n = ctx.config.feedback.n_comparisons
    rng = ctx.rng("feedback")
    drawn = [rng.randrange(len(rows)) for _ in range(2 * n)]
    show = ctx.progress("feedback (sampling)", math.ceil(len(drawn) / SAMPLE_CHUNK))
    pairs, identical = [], 0
    for c in range(0, len(drawn), SAMPLE_CHUNK):
        chunk = drawn[c:c + SAMPLE_CHUNK]
        samples = backend.sample(model, [prompt_ids(chat, rows[i].prompt) for i in chunk], 2,
                                 seed=ctx.seed * 1_000_003 + c)
        for j, i in enumerate(chunk):
            a, b = samples.responses[2 * j], samples.responses[2 * j + 1]
            if a == b:
                identical += 1
            elif len(pairs) < n:
                pairs.append((i, a, b, *samples.truncated[2 * j:2 * j + 2]))
        show(c // SAMPLE_CHUNK + 1, {"pairs": len(pairs)})
        if len(pairs) >= n:
            break
    return pairs, identical


def gold_scores(gold_spec: str, rows, pairs, chat) -> list[tuple[float | None, float | None]]:
    """The gold's score of both responses of every pair (None where it gave none)."""
    from ..rewards.combine import RewardSources
    gold = RewardSources([gold_spec])
    ids = [r for _, a, b, *_ in pairs for r in (a, b)]
    picked = [rows[i] for i, *_ in pairs for _ in (0, 1)]
    scored = gold(RewardBatch([r.prompt for r in picked], [chat.decode(x) for x in ids], ids,
                              [r.fields for r in picked], [r.where for r in picked],
                              [t for *_, ta, tb in pairs for t in (ta, tb)]))
    total = [None if math.isnan(t) else t for t in scored.total]
    return list(zip(total[0::2], total[1::2]))


def _record_prompt(prompt) -> tuple[str, list[dict]]:
    """(last user turn, earlier turns) of a prompt-file prompt, as a record holds them."""
    turns = messages_of(prompt)
    return turns[-1]["content"], turns[:-1]


def run(ctx: StageContext) -> dict:
    from ..tune.prompts import load_prompts
    cfg = ctx.config.feedback
    meta = world_meta(ctx.run)
    rows = load_prompts(ctx.run.stage_dir("world") / TRAIN)
    model, _, chat, backend = load_sampler(sft_model(ctx.run), ctx.config.eval.max_new_tokens,
                                           cfg.temperature)
    sampled, identical = sample_pairs(ctx, rows, model, chat, backend)
    scores = gold_scores(meta["gold"], rows, sampled, chat)
    pairs, contexts, shapes, unscored = [], [], [], 0
    for (i, a, b, *_), gold in zip(sampled, scores):
        if None in gold:
            unscored += 1  # the gold gave no verdict: nothing for the annotators to perceive
            continue
        texts = (chat.decode(a), chat.decode(b))
        text, context = _record_prompt(rows[i].prompt)
        pairs.append(ScoredPair(text, prompt_id(rows[i], i), texts, gold,
                                (features(texts[0]), features(texts[1]))))
        contexts.append([Message(**t) for t in context])
        # a plain-string prompt is raw text to the policy and the reward model, as in TRL
        shapes.append({TRL_ROW: "standard"} if isinstance(rows[i].prompt, str) else {})
    pool = build_pool(cfg, ctx.seed)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {"generator": "rlxf.feedback.simulated", "seed": ctx.seed,
                  "pairs": f"[world] model samples at temperature {cfg.temperature}",
                  "gold": meta["gold"]}
    records = []
    for r in label_scored_pairs(pairs, pool, cfg.overlap, ctx.seed):
        k = int(r.item_id[1:])
        records.append(r.model_copy(update={"created": created, "context": contexts[k],
                                            "provenance": {**provenance, **shapes[k]}}))
    gold_choice = [None if p.gold[0] == p.gold[1] else "a" if p.gold[0] > p.gold[1] else "b"
                   for p in pairs]
    metrics, counts = quality_control(ctx, records, [p.prompt for p in pairs], gold_choice,
                                      pool_json(pool, LAB_ONLY), set())
    write_jsonl(ctx.out / "feedback.jsonl", [r.to_json() for r in records])
    write_jsonl(ctx.out / "gold.jsonl", [
        {"item_id": f"c{k:06d}", "prompt_id": p.prompt_id, "gold": list(p.gold),
         "features": list(p.features)} for k, p in enumerate(pairs)])
    metrics["records"] = record_facts(
        records, f"the [world] model's samples (temperature {cfg.temperature:g})")
    metrics["gold"] = meta["gold"]
    return {"counts": {"comparisons": len(pairs), "judgements": len(records),
                       "dropped_identical_pairs": identical, "dropped_gold_unscored": unscored,
                       "triggered_comparisons": 0, **counts},
            "metrics": metrics}
