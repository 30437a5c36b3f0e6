"""A lab run's multi-step questions as files for the real-model path (issue 15, item 6): a policy
is taught the step format by `rlxf sft`, trained by `rlxf grpo --reward prm:RUN` (or `orm:RUN`)
and measured against the gold step judge by `rlxf eval --gold-steps RUN` (docs/EVAL.md).

`rlxf data multihop RUN --out DIR` writes
- DIR/sft.jsonl: TRL prompt/completion rows on the process stage's training questions, each reply
  written by its fallible reasoner (world/multihop.py `write_steps` with the run's [process]
  step_accuracy and consistency), so some steps are wrong, as the lab's demonstrations are;
- DIR/train.jsonl, DIR/heldout.jsonl: prompt files `{prompt, prompt_id, family}` of the process
  stage's split (its ORM and PRM were trained on the training questions only);
- DIR/model: the lab's SFT model (or `model`) with the step format's words added to its
  tokenizer -- the world's tokenizer lacks "same" and "answer" -- appended, so every other id is
  unchanged, their embeddings initialised by transformers' `resize_token_embeddings`.
DIR is built in DIR.partial/ and renamed when complete."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from ..rundir import RunDir, write_jsonl
from ..world.kb import COLORS
from ..world.multihop import (WORDS, multihop_prompts, render_steps, split_multihop,
                              write_steps)
from ..world.saved import load_world


def step_format_words(kb) -> list[str]:
    """Every word a multi-step question or reply can use."""
    return sorted({w for w in WORDS if not w.startswith("{")} | set(kb.creatures) | set(COLORS))


def export_multihop(run_dir: Path, out: Path, *, n_demonstrations: int = 2000,
                    model: Path | None = None, seed: int = 0) -> dict:
    """Counts of what was written; ValueError on a run or directory that cannot be used."""
    from ..config import load_config
    if not (run_dir / "world" / "world.json").exists():
        raise ValueError(f"{run_dir}: not a lab run directory (no world/world.json; "
                         "`rlxf run` writes one)")
    model = model or run_dir / "sft" / "model"
    if not (model / "config.json").exists():
        raise ValueError(f"{model}: not a model directory (no config.json); the lab run's SFT "
                         "stage writes RUN/sft/model, or give --model")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: already exists and is not empty (choose another --out)")
    config = load_config(run_dir / "config.toml")
    cfg, world = config.process, load_world(RunDir(run_dir))
    kb = world.kb
    train, heldout = split_multihop(multihop_prompts(kb), config.seed, cfg.heldout_fraction)
    rng = random.Random(f"{seed}:multihop-demonstrations")
    demos = [(p, write_steps(p, kb, cfg.step_accuracy, cfg.consistency, rng))
             for p in (rng.choice(train) for _ in range(n_demonstrations))]

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write_jsonl(partial / "sft.jsonl", [{"prompt": p.text, "completion": render_steps(r),
                                         "prompt_id": p.id} for p, r in demos])
    for name, split in (("train", train), ("heldout", heldout)):
        write_jsonl(partial / f"{name}.jsonl", [{"prompt": p.text, "prompt_id": p.id,
                                                 "family": p.family} for p in split])
    added = _with_words(model, partial / "model", step_format_words(kb), seed)
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return {"demonstrations": len(demos), "prompts/train": len(train),
            "prompts/heldout": len(heldout), "words_added": added}


def _with_words(src: Path, dst: Path, words: list[str], seed: int) -> int:
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM

    from ..models.build import load_tokenizer
    tok = load_tokenizer(src)
    vocab = tok.get_vocab()
    missing = [w for w in words if w not in vocab]
    tok.add_tokens([AddedToken(w, single_word=True) for w in missing])
    model = AutoModelForCausalLM.from_pretrained(src.resolve())
    if missing:
        torch.manual_seed(seed)  # mean resizing samples the new rows
        model.resize_token_embeddings(len(tok))
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return len(missing)
