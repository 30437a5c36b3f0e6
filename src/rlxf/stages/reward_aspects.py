"""The reward stage's multi-objective model ([reward] aspects = true): one head per aspect
(helpful, harmless, honest) on the SFT backbone, trained with Bradley-Terry on per-aspect pairs
(feedback.aspects explains how ratings become pairs and why), combined by weights into one
reward. Saved as reward/aspects (`load_aspect_model`); its harmless head is the cost model of
safe RL. Accuracy is measured per aspect against the raters and against the gold aspect."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ..feedback.aspects import ASPECTS, aspect_pairs
from ..feedback.record import read_records
from ..models.reward_heads import ASPECTS_DIR, AspectRewardModel
from ..models.tokenizer import prompt_ids, response_ids
from ..eval.reward_metrics import heldout_metrics
from ..train.reward import head_pair_batch, train_or_load
from ..train.reward_data import is_heldout
from ..world.judge import score as gold_score
from .context import StageContext
from .hparams import train_hparams

NO_ASPECTS = ("[reward] aspects = true, but the feedback has no aspect labels: rating records "
              "with helpful / harmless / honest ratings (or an alias in "
              "rlxf.feedback.aspects.ASPECT_ALIASES), or pairwise records with provenance.aspect "
              "(PKU-SafeRLHF); simulated annotators give them with [feedback] aspect_ratings = "
              "true")


class CombinedHead(torch.nn.Module):
    """The aspect model as a one-output reward model (the weighted sum of its heads), so the
    scalar model's held-out evaluation applies to it unchanged."""

    def __init__(self, model, weights: list[float]):
        super().__init__()
        self.model, self.weights = model, torch.tensor(weights)

    def forward(self, input_ids, attention_mask):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return SimpleNamespace(logits=logits @ self.weights[:, None])


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def aspect_accuracy(model: AspectRewardModel, pairs, world, pad: int) -> dict:
    """Per aspect: how often its head orders held-out pairs as the raters did, and as the gold
    judge's score for that aspect does (where the two responses' gold scores differ)."""
    tok = world.tokenizer
    prompts = [prompt_ids(tok, p.prompt) for p in pairs]
    better = model.score(prompts, [response_ids(tok, p.better) for p in pairs], pad)
    worse = model.score(prompts, [response_ids(tok, p.worse) for p in pairs], pad)
    raters = {a: [] for a in ASPECTS}
    gold = {a: [] for a in ASPECTS}
    for i, p in enumerate(pairs):
        right = better[p.aspect][i] > worse[p.aspect][i]
        raters[p.aspect].append(right)
        prompt = world.find_prompt(p.prompt_id)
        if prompt is not None:
            gb = getattr(gold_score(prompt, p.better, world.kb), p.aspect)
            gw = getattr(gold_score(prompt, p.worse, world.kb), p.aspect)
            if abs(gb - gw) > 1e-9:
                gold[p.aspect].append(right == (gb > gw))
    return {a: {"accuracy/heldout": _rate(raters[a]), "accuracy/gold": _rate(gold[a]),
                "pairs/heldout": len(raters[a]), "n_gold_comparable": len(gold[a])}
            for a in ASPECTS}


def run_aspects(ctx: StageContext, world, heldout_rows) -> dict:
    """Train, save and evaluate the aspect model; returns the `aspects` metrics.
    heldout_rows: the scalar model's held-out pairs, on which the combined reward is scored."""
    cfg, tok = ctx.config.reward, world.tokenizer
    pad = tok.pad_token_id
    pairs = aspect_pairs(read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl"))
    if not pairs:
        raise ValueError(f"reward: {NO_ASPECTS}")
    # Held out by prompt: ratings pair responses across items of the same prompt.
    held = [p for p in pairs if is_heldout(p.prompt, ctx.seed, cfg.heldout_fraction)]
    train = [p for p in pairs if not is_heldout(p.prompt, ctx.seed, cfg.heldout_fraction)]
    if not train:
        raise ValueError(f"reward: all {len(pairs)} aspect pairs fell in the held-out split")
    heads = list(ASPECTS)
    examples = [(heads.index(p.aspect), prompt_ids(tok, p.prompt), response_ids(tok, p.better),
                 response_ids(tok, p.worse)) for p in train]
    model, result = train_or_load(ctx.model_dir("sft"), ctx.ckpt / "aspects", examples,
                                  train_hparams(cfg), pad, ctx.seed + 7, ctx.progress,
                                  "reward aspects",
                                  num_labels=len(heads), batch_loss=head_pair_batch)
    weights = cfg.aspect_weights.model_dump() if cfg.aspect_weights else dict(world.weights)
    aspect_model = AspectRewardModel(model, heads, weights)
    aspect_model.save(ctx.out / ASPECTS_DIR, tok)
    out = aspect_accuracy(aspect_model, held, world, pad) if held else {
        a: {"accuracy/heldout": None, "accuracy/gold": None, "pairs/heldout": 0,
            "n_gold_comparable": 0} for a in heads}
    for a in heads:
        out[a]["pairs/train"] = sum(p.aspect == a for p in train)
        out[a]["weight"] = weights[a]
    combined = heldout_metrics(CombinedHead(model, [weights[a] for a in heads]), heldout_rows,
                               world, pad) if heldout_rows else {}
    out["combined"] = {"accuracy/heldout": combined.get("accuracy/heldout"),
                       "accuracy/gold": combined.get("accuracy/gold"),
                       "pairs/heldout": len(heldout_rows),
                       "n_gold_comparable": combined.get("n_gold_comparable", 0),
                       "pairs/train": len(train), "weight": None}
    out["loss/reward"] = result.get("loss/reward")
    return out
