"""Stage `reward` in a model world: the proxy reward model, trained by the real-model recipe
(`rlxf reward`'s, tune/recipes.py) on the majority labels of the feedback's training items,
starting from [reward] model (default: the [world] model). Held-out items measure it as the
lab's reward stage does: accuracy against the annotators' majority and against the gold's
verdict (feedback/gold.jsonl). Training runs in the stage's checkpoint directory, so an
interrupted stage resumes where it stopped."""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

from ..config import TuneRewardConfig
from ..feedback.quality import majority
from ..feedback.record import read_records
from ..rewards.batch import RewardBatch
from ..rundir import read_jsonl, write_jsonl
from ..stages.context import StageContext
from .world import sft_model

MODEL = "model"  # in reward/: the proxy reward model (a sequence-classification directory)


def tune_config(ctx: StageContext, cls, **extra):
    """A tune recipe's config from a pipeline section's training keys and the run's seed."""
    cfg = ctx.config
    section = extra.pop("section")
    return cls(**section.model_dump(include={"steps", "batch_size", "lr", "warmup_steps",
                                             "checkpoint_every", "grad_accum", "precision",
                                             "device"}), seed=cfg.seed, **extra)


def split_items(records, fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(training item ids, held-out item ids): a seeded share of the items, at least one
    held out when there are two or more."""
    items = sorted({r.item_id for r in records})
    random.Random(f"{seed}:reward-heldout").shuffle(items)
    n = min(len(items) - 1, max(1, round(fraction * len(items)))) if len(items) > 1 else 0
    return set(items[n:]), set(items[:n])


def train_in_checkpoint(ctx: StageContext, name: str, train) -> Path:
    """Run `train(out)` in the stage's checkpoint directory (its OUT.partial resumes there) and
    move the finished directory into the stage's output."""
    done = ctx.ckpt / name
    if not done.exists():  # finished before an interruption: not trained twice
        train(done)
    shutil.move(str(done), str(ctx.out / name))
    return ctx.out / name


def training_record(directory: Path) -> dict:
    """What a tune recipe recorded in its output (rlxf_training.json): metrics, data counts."""
    from ..tune.run_record import TRAINING_RECORD
    return json.loads((directory / TRAINING_RECORD).read_text())


def _prompt(record):
    """A record's prompt in the prompt file's shape (a string, or messages)."""
    if not record.context:
        return record.prompt
    return [m.model_dump() for m in record.context] + [{"role": "user", "content": record.prompt}]


def heldout_accuracy(model_dir: Path, records, heldout: set[str], gold: dict) -> dict:
    """Accuracy of the proxy on held-out items against their majority label and against the
    gold's verdict (items where the two gold scores differ)."""
    from ..rewards.reward_model import RewardModelReward
    by_item: dict[str, list] = defaultdict(list)
    for r in records:
        if r.item_id in heldout and r.type == "pairwise":
            by_item[r.item_id].append(r)
    items = sorted(by_item)
    firsts = [by_item[i][0] for i in items]
    texts = [t for f in firsts for t in f.responses]
    prompts = [_prompt(f) for f in firsts for _ in (0, 1)]
    rm = RewardModelReward(model_dir)
    scores = rm(RewardBatch(prompts, texts, [[] for _ in texts], [{} for _ in texts],
                            [f"feedback item {i}" for i in items for _ in (0, 1)]))
    prefers = {i: "a" if scores[2 * k] > scores[2 * k + 1] else "b"
               for k, i in enumerate(items)}
    labelled = [(i, majority([{"choice": "ab"[j.choice]} for j in by_item[i] if not j.tie]))
                for i in items]
    labelled = [(i, m) for i, m in labelled if m is not None]
    judged = [(i, g) for i in items
              if (g := gold.get(i)) is not None and g[0] != g[1]]
    return {
        "metrics": {
            "accuracy/heldout": (sum(prefers[i] == m for i, m in labelled) / len(labelled)
                                 if labelled else None),
            "accuracy/gold": (sum(prefers[i] == ("a" if g[0] > g[1] else "b")
                                  for i, g in judged) / len(judged) if judged else None)},
        "counts": {"pairs/heldout": len(labelled), "pairs/gold_comparable": len(judged)}}


def run(ctx: StageContext) -> dict:
    from ..tune.recipes import run_reward
    cfg = ctx.config.reward
    fb = ctx.run.stage_dir("feedback")
    records = read_records(fb / "feedback.jsonl")
    train, heldout = split_items(records, cfg.heldout_fraction, ctx.seed)
    data = ctx.out / "train.jsonl"
    write_jsonl(data, [r.to_json() for r in records if r.item_id in train])
    start = Path(cfg.model) if cfg.model else sft_model(ctx.run)
    tune_cfg = tune_config(ctx, TuneRewardConfig, section=cfg,
                           center_coefficient=cfg.center_coefficient)
    model_dir = train_in_checkpoint(ctx, MODEL, lambda out: run_reward(
        start, data, out, tune_cfg, fmt="canonical", progress=ctx.progress))
    gold = {row["item_id"]: row["gold"] for row in read_jsonl(fb / "gold.jsonl")}
    measured = heldout_accuracy(model_dir, records, heldout, gold)
    trained = training_record(model_dir)
    return {"counts": {"items/train": len(train), "items/heldout": len(heldout),
                       "pairs/train": trained["data"]["pairs"], **measured["counts"]},
            "metrics": {**trained["metrics"], "steps": cfg.steps, **measured["metrics"],
                        "start_model": str(start),
                        "recipe": "rlxf reward (tune/recipes.py), Bradley-Terry on majority "
                                  "labels"}}
