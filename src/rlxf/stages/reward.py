"""Stage `reward`: a Bradley-Terry reward model on the SFT backbone, trained on the majority
label of each comparison (disagreement treated as noise -- the choice Casper et al. 3.2.1
question, recorded in the disclosure)."""

from __future__ import annotations

import hashlib

import torch
from transformers import AutoModelForSequenceClassification

from ..feedback.quality import items_of, majority
from ..feedback.record import read_records
from ..models.tokenizer import prompt_ids, response_ids
from ..train.loop import Checkpointer
from ..train.reward import pair_rewards, train_reward_model
from ..world.judge import score as gold_score
from .context import StageContext


def is_heldout(comparison_id: str, seed: int, fraction: float) -> bool:
    h = hashlib.sha256(f"{seed}:rm:{comparison_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def preference_pairs(ctx: StageContext, world):
    """(train, heldout) lists of (comparison row, (prompt ids, chosen ids, rejected ids))."""
    tok, cfg = world.tokenizer, ctx.config.reward
    records = read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl")
    first = {}
    for r in records:
        first.setdefault(r.item_id, r)
    train, heldout = [], []
    for item_id, judgements in items_of(records).items():
        winner = majority(judgements)
        if winner is None:
            continue
        rec = first[item_id]
        chosen, rejected = rec.responses if winner == "a" else rec.responses[::-1]
        pair = (prompt_ids(tok, rec.prompt), response_ids(tok, chosen),
                response_ids(tok, rejected))
        row = {"id": item_id, "prompt_id": rec.prompt_id, "chosen": chosen, "rejected": rejected}
        split = heldout if is_heldout(item_id, ctx.seed, cfg.heldout_fraction) else train
        split.append((row, pair))
    return train, heldout


@torch.no_grad()
def accuracies(model, items, world, pad_id: int) -> dict:
    """Agreement of the RM with the annotators' majority and with the gold judge."""
    agree_majority, agree_gold = [], []
    for b in range(0, len(items), 256):
        chunk = items[b: b + 256]
        rc, rr = pair_rewards(model, [pair for _, pair in chunk], pad_id)
        for (row, _), c, r in zip(chunk, rc.tolist(), rr.tolist()):
            agree_majority.append(c > r)
            prompt = world.prompt(row["prompt_id"])
            gc = gold_score(prompt, row["chosen"], world.kb).utility(world.weights)
            gr = gold_score(prompt, row["rejected"], world.kb).utility(world.weights)
            if abs(gc - gr) > 1e-9:  # gold ties say nothing about accuracy
                agree_gold.append((c > r) == (gc > gr))
    rate = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"accuracy/heldout": rate(agree_majority), "accuracy/gold": rate(agree_gold),
            "n_gold_comparable": len(agree_gold)}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.reward
    world = ctx.load_world()
    pad = world.tokenizer.pad_token_id
    train, heldout = preference_pairs(ctx, world)
    if not train or not heldout:
        raise ValueError(f"reward: {len(train)} training and {len(heldout)} held-out "
                         "comparisons; need some of each (more comparisons or another "
                         "[reward].heldout_fraction)")
    torch.manual_seed(ctx.seed)  # the scalar head's initialisation
    model = AutoModelForSequenceClassification.from_pretrained(ctx.model_dir("sft"), num_labels=1)
    model.config.pad_token_id = pad
    result = train_reward_model(model, [pair for _, pair in train], cfg, pad, ctx.seed,
                                Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                                ctx.progress("reward", cfg.steps))
    model.save_pretrained(ctx.out / "model")
    world.tokenizer.save_pretrained(ctx.out / "model")
    held = accuracies(model, heldout, world, pad)
    return {"counts": {"pairs/train": len(train), "pairs/heldout": len(heldout),
                       "pairs/gold_comparable": held.pop("n_gold_comparable")},
            "metrics": {**result, **held}}
