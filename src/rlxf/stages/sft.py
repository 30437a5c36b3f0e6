"""Stage `sft`: supervised fine-tuning of the base LM on demonstrations (loss on the response)."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig
from ..models.build import load_causal_lm
from ..models.tokenizer import prompt_ids, response_ids
from ..rundir import write_jsonl
from ..train.lm import train_lm
from ..train.loop import Checkpointer
from ..world.corpus import demonstration, sample_family_balanced
from ..world.grammar import render
from .context import StageContext
from .hparams import train_hparams


def tune_on_demonstrations(ctx: StageContext, tok, demos: list, start: Path, cfg: TrainConfig,
                           name: str) -> tuple[object, dict]:
    """Write the (prompt, response) demonstrations, train the model in `start` on them (loss on
    the response tokens) and save it with the tokenizer in OUT/model. Shared by `sft` and
    `finetune`."""
    write_jsonl(ctx.out / "demonstrations.jsonl",
                [{"prompt_id": p.id, "prompt": p.text, "response": r} for p, r in demos])
    examples = []
    for p, r in demos:
        pid = prompt_ids(tok, p.text)
        examples.append((pid + response_ids(tok, r), len(pid)))
    model = load_causal_lm(start)
    result = train_lm(model, examples, train_hparams(cfg), tok.pad_token_id, ctx.seed,
                      Checkpointer(ctx.ckpt, cfg.checkpoint_every), ctx.progress(name, cfg.steps))
    model.save_pretrained(ctx.out / "model")
    tok.save_pretrained(ctx.out / "model")
    return model, result


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.sft
    world = ctx.load_world()
    tok, rng = world.tokenizer, ctx.rng("sft")
    demos = [(p, render(demonstration(p, world.kb, world.weights, cfg.demonstrator_error, rng)))
             for p in sample_family_balanced(world.train, cfg.n_demonstrations, rng)]
    _, result = tune_on_demonstrations(ctx, tok, demos, ctx.model_dir("pretrain"), cfg, "sft")
    return {"counts": {"demonstrations": len(demos)}, "metrics": result}
