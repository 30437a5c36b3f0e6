"""Stage `process` (only with [process] enabled): process vs outcome supervision on multi-step
questions (world/multihop.py). A fallible reasoner writes answers that show their steps; simulated
labellers mark each step (process labels) or only the final answer (outcome labels), with the
same label noise; an outcome reward model (ORM) and a process reward model (PRM) are trained on
the same responses; then best-of-n with each, at equal n, on held-out questions: final-answer
accuracy, step accuracy and the rate of "right answer, wrong reasoning"."""

from __future__ import annotations

import random
from statistics import mean

import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

from ..models.tokenizer import build_word_tokenizer, prompt_ids
from ..rundir import atomic_write_json, write_jsonl
from ..train.bon import best_of_n
from ..train.loop import Checkpointer
from ..train.process import classifier_scores, process_score, train_classifier
from ..world.multihop import (WORDS, judge_steps, multihop_prompts, render_steps,
                              split_multihop, write_steps)
from ..world.vocab import world_vocabulary
from .context import StageContext
from .hparams import train_hparams


def _tokens(tok, text: str) -> list[int]:
    return tok.convert_tokens_to_ids(text.split())


def _prefixes(text: str) -> list[str]:
    """The response up to and including each step (sentence)."""
    words, out = text.split(), []
    for i, w in enumerate(words):
        if w == ".":
            out.append(" ".join(words[: i + 1]))
    return out


def _build(cfg, tok, seed: int):
    m = cfg.model
    config = GPT2Config(vocab_size=len(tok), n_positions=m.max_length, n_embd=m.n_embd,
                        n_layer=m.n_layer, n_head=m.n_head, num_labels=1,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(config)


PER_PROMPT_FILE = "bon_prompts.jsonl"  # in process/: one row of sums per held-out question


def _add_pick(sums: dict, key: str, g) -> None:
    """One best-of-n pick's gold verdicts into its question's sums (KEY/final, KEY/steps_right,
    KEY/steps, KEY/rawr: right answer, wrong reasoning); _selection_metrics's ratios of them."""
    for col, v in (("final", float(g.final)), ("steps_right", float(sum(g.steps))),
                   ("steps", float(len(g.steps))),
                   ("rawr", float(g.right_answer_wrong_reasoning))):
        sums[f"{key}/{col}"] = sums.get(f"{key}/{col}", 0.0) + v


def _selection_metrics(golds) -> dict:
    return {"accuracy/final": mean(g.final for g in golds),
            "accuracy/steps": mean(s for g in golds for s in g.steps) if golds else None,
            "rate/right_answer_wrong_reasoning": mean(g.right_answer_wrong_reasoning
                                                      for g in golds),
            "n": len(golds)}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.process
    if not cfg.enabled:
        return {"counts": {"enabled": 0}, "metrics": {}}
    world = ctx.load_world()
    kb, rng = world.kb, ctx.rng("process")
    tok = build_word_tokenizer(world_vocabulary(extra=WORDS))
    pad = tok.pad_token_id
    train, heldout = split_multihop(multihop_prompts(kb), ctx.seed, cfg.heldout_fraction)

    def noisy(label: bool) -> float:
        return float(label != (rng.random() < cfg.label_noise))

    # 1. responses and their labels: the same responses for both reward models
    outcome, process = [], []
    for _ in range(cfg.n_responses):
        p = rng.choice(train)
        r = write_steps(p, kb, cfg.step_accuracy, cfg.consistency, rng)
        text, gold = render_steps(r), judge_steps(p, r, kb)
        pid = prompt_ids(tok, p.text)
        outcome.append((pid, _tokens(tok, text), noisy(gold.final)))
        for prefix, right in zip(_prefixes(text), (*gold.steps, gold.final)):
            process.append((pid, _tokens(tok, prefix), noisy(right)))

    # 2. train the ORM and the PRM (same architecture, steps and seed)
    models, results = {}, {}
    for name, examples in (("orm", outcome), ("prm", process)):
        model = _build(cfg, tok, ctx.seed)
        results[name] = train_classifier(model, examples, train_hparams(cfg), pad, ctx.seed,
                                         Checkpointer(ctx.ckpt / name, cfg.checkpoint_every),
                                         ctx.progress(f"process {name}", cfg.steps))
        model.save_pretrained(ctx.out / name)
        models[name] = model
    tok.save_pretrained(ctx.out / "tokenizer")

    # 3. best-of-n on held-out questions: n_max candidates per draw, the first n for each n
    # (common random numbers: every n and both selectors see the same candidates)
    bon_rng = random.Random(f"{ctx.seed}:process-bon")
    n_max = max(cfg.bon_n)
    draws = [(p, [write_steps(p, kb, cfg.step_accuracy, cfg.consistency, bon_rng)
                  for _ in range(n_max)]) for p in heldout for _ in range(cfg.bon_draws)]
    cands = [(p, render_steps(r), judge_steps(p, r, kb)) for p, rs in draws for r in rs]
    pids = [prompt_ids(tok, p.text) for p, _, _ in cands]
    orm = classifier_scores(models["orm"], pids, [_tokens(tok, t) for _, t, _ in cands], pad)
    step_rows = [(i, prefix) for i, (_, t, _) in enumerate(cands) for prefix in _prefixes(t)]
    step_logits = classifier_scores(models["prm"], [pids[i] for i, _ in step_rows],
                                    [_tokens(tok, s) for _, s in step_rows], pad)
    per_cand: list[list[float]] = [[] for _ in cands]
    for (i, _), z in zip(step_rows, step_logits):
        per_cand[i].append(z)
    prm = [process_score(z) for z in per_cand]
    golds = [g for _, _, g in cands]
    bon = {}
    # per held-out question, additive sums of what each selector picked: the audit pools them
    # over seeds and bootstraps questions (audit/process_bon.py)
    per_prompt = {p.id: {"draws": 0.0} for p in heldout}
    for p, _ in draws:
        per_prompt[p.id]["draws"] += 1
    for n in cfg.bon_n:
        for name, scores in (("orm", orm), ("prm", prm)):
            s = torch.tensor(scores, dtype=torch.float64).view(len(draws), n_max)[:, :n]
            pick = best_of_n(s).tolist()
            picked = [golds[d * n_max + k] for d, k in enumerate(pick)]
            bon[f"{name}/n{n}"] = _selection_metrics(picked)
            for (p, _), g in zip(draws, picked):
                _add_pick(per_prompt[p.id], f"{name}/n{n}", g)
    # How well each model agrees with the gold labels it was trained to predict, held out.
    held = {"orm/accuracy_final": mean((z > 0) == g.final for z, g in zip(orm, golds)),
            "prm/accuracy_steps": mean((z > 0) == right for z, right in zip(
                step_logits, [x for g in golds for x in (*g.steps, g.final)]))}
    atomic_write_json(ctx.out / "bon.json", {"bon": bon, "heldout": held,
                                             "prm_score": "min over steps of sigmoid(logit)"})
    write_jsonl(ctx.out / PER_PROMPT_FILE, [{"prompt_id": pid, **sums}
                                            for pid, sums in sorted(per_prompt.items())])
    return {"counts": {"prompts/train": len(train), "prompts/heldout": len(heldout),
                       "responses": cfg.n_responses, "step_labels": len(process),
                       "bon_draws": len(draws)},
            "metrics": {**{f"{k}/{m}": v for k, r in bon.items() for m, v in r.items()
                           if m != "n"},
                        **held, **{f"{k}/loss": r["loss"] for k, r in results.items()}}}
