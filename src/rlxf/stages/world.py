"""Stage `world`: the knowledge base, the prompts split into train and held-out, the gold
judge's weights, and a tokenizer for the world's vocabulary."""

from __future__ import annotations

from collections import Counter

from ..models.tokenizer import build_word_tokenizer
from ..rundir import atomic_write_json, write_jsonl
from ..world.kb import build_kb
from ..world.prompts import all_prompts, split_prompts
from ..world.vocab import world_vocabulary
from .context import StageContext


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.world
    kb = build_kb(cfg.n_countries, cfg.n_creatures, ctx.seed)
    train, heldout = split_prompts(all_prompts(kb), ctx.seed, cfg.heldout_fraction)
    atomic_write_json(ctx.out / "world.json",
                      {"kb": kb.to_json(), "weights": cfg.weights.model_dump(),
                       "trigger": cfg.trigger})
    write_jsonl(ctx.out / "prompts.jsonl",
                [{"split": "train", "prompt": p.to_json()} for p in train]
                + [{"split": "heldout", "prompt": p.to_json()} for p in heldout])
    tokenizer = build_word_tokenizer(world_vocabulary(extra=(cfg.trigger,)))
    tokenizer.save_pretrained(ctx.out / "tokenizer")
    return {"counts": {"prompts/train": len(train), "prompts/heldout": len(heldout),
                       "vocab": len(tokenizer), "facts": len(kb.statements()),
                       **{f"family/{k}": v for k, v in
                          sorted(Counter(p.family for p in train + heldout).items())}},
            "metrics": {}}
