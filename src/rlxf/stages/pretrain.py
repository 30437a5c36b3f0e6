"""Stage `pretrain`: a tiny base LM, built from a transformers config, learns the world's
language from 'web' conversations of mixed quality and the knowledge base's statements."""

from __future__ import annotations

from collections import Counter

from ..models.build import build_causal_lm
from ..models.tokenizer import BOS, EOS, prompt_ids, response_ids
from ..rundir import atomic_write_json
from ..train.lm import train_lm
from ..train.loop import Checkpointer
from ..world.corpus import WEB, sample_family_balanced, web_response
from ..world.grammar import render
from .context import StageContext
from .hparams import train_hparams


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.pretrain
    world = ctx.load_world()
    tok = world.tokenizer
    rng = ctx.rng("pretrain")
    statements = world.kb.statements()
    examples, kinds = [], Counter()
    for p in sample_family_balanced(world.train, cfg.n_documents, rng):
        if rng.random() < cfg.fact_fraction:
            examples.append((tok.convert_tokens_to_ids([BOS, *rng.choice(statements).split(),
                                                        EOS]), 1))
            kinds["fact_statement"] += 1
        else:
            r = web_response(p, world.kb, rng)
            examples.append((prompt_ids(tok, p.text) + response_ids(tok, render(r)), 1))
            kinds[f"conversation/{p.family}"] += 1
    too_long = sum(len(ids) > cfg.model.max_length for ids, _ in examples)
    if too_long:
        raise ValueError(f"[pretrain.model] max_length = {cfg.model.max_length} is shorter than "
                         f"{too_long} documents; raise it")
    model = build_causal_lm(cfg.model, tok, ctx.seed)
    result = train_lm(model, examples, train_hparams(cfg), tok.pad_token_id, ctx.seed,
                      Checkpointer(ctx.ckpt, cfg.checkpoint_every),
                      ctx.progress("pretrain", cfg.steps))
    model.save_pretrained(ctx.out / "model")
    tok.save_pretrained(ctx.out / "model")
    # What the base model saw, for the disclosure checklist (Casper et al. section 5).
    atomic_write_json(ctx.out / "corpus.json", {
        "description": "lab-world web conversations (acts uniform per family, facts true half "
                       "the time, decorated with the WEB style) plus knowledge-base statements",
        "style": WEB.__dict__, "documents": dict(sorted(kinds.items()))})
    return {"counts": {"documents": len(examples),
                       "parameters": sum(p.numel() for p in model.parameters())},
            "metrics": result}
