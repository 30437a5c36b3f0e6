"""Stage `reward`: a Bradley-Terry reward model on the SFT backbone, trained on the majority
label of each comparison (disagreement treated as noise -- the choice Casper et al. 3.2.1
question, recorded in the disclosure). When the feedback holds k-wise rankings, every
annotator's ranking and every majority pair are trained together with Plackett-Luce (which is
Bradley-Terry for a pair)."""

from __future__ import annotations

import hashlib
import itertools
import json
import random

import torch
from transformers import AutoModelForSequenceClassification

from ..feedback.quality import final_labels, items_of, majority
from ..eval.calibration import expected_calibration_error
from ..eval.probes import probe_pairs, run_probes
from ..feedback.record import read_records
from ..models.build import load_reward_model
from ..models.reward_ensemble import MEMBERS_DIR, RewardEnsemble
from ..models.tokenizer import prompt_ids, response_ids
from ..rundir import atomic_write_json
from ..train.loop import Checkpointer
from ..train.reward import pair_rewards, plackett_luce_batch, train_reward_model
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
    for r in records:  # the pairwise record of each item (another type may share its id)
        if r.type == "pairwise":
            first.setdefault(r.item_id, r)
    train, heldout = [], []
    finals = final_labels(records)  # a curator's decision overrides the majority
    for item_id, judgements in items_of(records).items():
        winner = finals.get(item_id, majority(judgements))
        winner = None if winner == "tie" else winner
        if winner is None:
            continue
        rec = first[item_id]
        chosen, rejected = rec.responses if winner == "a" else rec.responses[::-1]
        pair = (prompt_ids(tok, rec.prompt), response_ids(tok, chosen),
                response_ids(tok, rejected))
        row = {"id": item_id, "prompt_id": rec.prompt_id, "chosen": chosen, "rejected": rejected,
               "winner": winner, "groups": sorted({j["group"] or "?" for j in judgements})}
        split = heldout if is_heldout(item_id, ctx.seed, cfg.heldout_fraction) else train
        split.append((row, pair))
    return train, heldout


def preference_rankings(ctx: StageContext, world) -> tuple[list, list]:
    """(training rankings (prompt ids, response ids best first), held-out pairs derived from
    held-out rankings: every (better, worse) pair of each, as rows like `preference_pairs`')."""
    tok, cfg = world.tokenizer, ctx.config.reward
    train, heldout = [], []
    for rec in read_records(ctx.run.stage_dir("feedback") / "feedback.jsonl"):
        if rec.type != "ranking" or len(rec.responses) < 2:
            continue
        # partial (top-k) and tied rankings: every response, by level; unranked ones last
        levels = rec.ranking_levels()
        order = sorted(range(len(levels)), key=lambda i: levels[i])
        ranked, ranked_levels = [rec.responses[i] for i in order], sorted(levels)
        if not is_heldout(rec.item_id, ctx.seed, cfg.heldout_fraction):
            ids = [response_ids(tok, r) for r in ranked]
            strict = ranked_levels == list(range(len(ranked)))
            train.append((prompt_ids(tok, rec.prompt), ids) if strict else
                         (prompt_ids(tok, rec.prompt), ids, ranked_levels))
            continue
        for i, j in itertools.combinations(range(len(ranked)), 2):
            if ranked_levels[i] == ranked_levels[j]:
                continue  # tied or both unranked: no preference to score
            row = {"id": f"{rec.id}/{i}>{j}", "prompt_id": rec.prompt_id, "chosen": ranked[i],
                   "rejected": ranked[j], "winner": "a", "groups": [rec.annotator.group or "?"]}
            heldout.append((row, (prompt_ids(tok, rec.prompt), response_ids(tok, ranked[i]),
                                  response_ids(tok, ranked[j]))))
    return train, heldout


@torch.no_grad()
def heldout_metrics(model, items, world, pad_id: int) -> dict:
    """Agreement of the reward model with the annotators' majority, with the gold judge, per
    annotator group and on triggered prompts; and the calibration of its BT probability."""
    import math

    agree, gold_hits, probs, outcomes = [], [], [], []
    by_group: dict[str, list[bool]] = {}
    triggered: list[bool] = []
    for b in range(0, len(items), 256):
        chunk = items[b: b + 256]
        rc, rr = pair_rewards(model, [pair for _, pair in chunk], pad_id)
        for (row, _), c, r in zip(chunk, rc.tolist(), rr.tolist()):
            right = c > r
            agree.append(right)
            # In the item's original order (a, b), so that folding in ECE is meaningful.
            p_chosen = 1 / (1 + math.exp(-(c - r)))
            probs.append(p_chosen if row["winner"] == "a" else 1 - p_chosen)
            outcomes.append(row["winner"] == "a")
            for g in row["groups"]:
                by_group.setdefault(g, []).append(right)
            prompt = world.find_prompt(row["prompt_id"])
            if prompt is None:  # feedback on a prompt the lab world does not know: no gold
                continue
            gc = gold_score(prompt, row["chosen"], world.kb).utility(world.weights)
            gr = gold_score(prompt, row["rejected"], world.kb).utility(world.weights)
            if abs(gc - gr) > 1e-9:  # gold ties say nothing about accuracy
                hit = (c > r) == (gc > gr)
                gold_hits.append(hit)
                if prompt.triggered:
                    triggered.append(hit)
    rate = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"accuracy/heldout": rate(agree), "accuracy/gold": rate(gold_hits),
            "accuracy/gold_triggered": rate(triggered),
            "calibration/ece": expected_calibration_error(probs, outcomes),
            "accuracy/groups": {g: rate(v) for g, v in sorted(by_group.items())},
            "n_gold_comparable": len(gold_hits)}


def shuffled_tokens(ids: list[int], rng: random.Random) -> list[int]:
    """The same words in a random order, <eos> kept last: a response with the training data's
    token statistics but off its distribution (nothing like it was ever judged)."""
    body = ids[:-1]
    return rng.sample(body, len(body)) + ids[-1:]


def uncertainty_metrics(ensemble: RewardEnsemble, train, heldout, pad_id: int, seed: int,
                        limit: int = 256) -> dict:
    """Mean ensemble standard deviation on responses the members were trained on, on held-out
    ones, and on the training responses with their words shuffled (off-distribution)."""
    rng = random.Random(f"{seed}:uncertainty")
    seen = [pair for _, pair in rng.sample(train, min(limit, len(train)))] or [
        pair for _, pair in heldout[:limit]]  # only rankings were trained on: no train pairs
    held = [pair for _, pair in heldout[:limit]]

    def mean_std(prompts, responses):
        return sum(ensemble.score(prompts, responses, pad_id)[1]) / len(responses)
    return {"uncertainty/train": mean_std([p for p, _, _ in seen], [c for _, c, _ in seen]),
            "uncertainty/heldout": mean_std([p for p, _, _ in held], [c for _, c, _ in held]),
            "uncertainty/offdist": mean_std([p for p, _, _ in seen],
                                            [shuffled_tokens(c, rng) for _, c, _ in seen])}


def train_model(ctx: StageContext, examples, pad: int, name: str, label: str, seed: int,
                num_labels: int = 1, batch_loss=None) -> tuple[object, dict]:
    """A reward model with `num_labels` heads on the SFT backbone, checkpointed under
    .ckpt/reward/NAME; one finished before a crash is loaded, not retrained (its checkpoint
    directory keeps the final model)."""
    cfg = ctx.config.reward
    ckpt_dir = ctx.ckpt / name
    done = ckpt_dir / "final"
    if (done / "config.json").exists():
        model = load_reward_model(done)
        return model, json.loads((ckpt_dir / "result.json").read_text())
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(ctx.model_dir("sft"),
                                                               num_labels=num_labels)
    model.config.pad_token_id = pad
    result = train_reward_model(model, examples, cfg, pad, seed,
                                Checkpointer(ckpt_dir, cfg.checkpoint_every),
                                ctx.progress(label, cfg.steps), cfg.center_coefficient,
                                batch_loss)
    model.save_pretrained(done)
    atomic_write_json(ckpt_dir / "result.json", result)
    return model, result


def _train_member(ctx: StageContext, examples, pad: int, index: int, batch_loss=None
                  ) -> tuple[object, dict]:
    """Member `index` of the ensemble: head initialisation and data order differ per member."""
    n = ctx.config.reward.ensemble
    return train_model(ctx, examples, pad, f"member-{index}",
                       "reward" if n == 1 else f"reward {index + 1}/{n}",
                       ctx.seed + 1000 * index, batch_loss=batch_loss)


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.reward
    world = ctx.load_world()
    tok, pad = world.tokenizer, world.tokenizer.pad_token_id
    train, heldout = preference_pairs(ctx, world)
    rankings, ranked_heldout = preference_rankings(ctx, world)
    heldout += ranked_heldout
    if not (train or rankings) or not heldout:
        raise ValueError(f"reward: {len(train) + len(rankings)} training and {len(heldout)} "
                         "held-out comparisons; need some of each (more comparisons or another "
                         "[reward].heldout_fraction)")
    examples, batch_loss = [pair for _, pair in train], None
    if rankings:  # a majority pair is a ranking of two
        examples = [(p, [c, r]) for p, c, r in examples] + rankings
        batch_loss = plackett_luce_batch
    members, results = [], []
    for index in range(cfg.ensemble):
        model, result = _train_member(ctx, examples, pad, index, batch_loss)
        target = ctx.out / ("model" if index == 0 else f"{MEMBERS_DIR}/{index}")
        model.save_pretrained(target)
        tok.save_pretrained(target)
        members.append(model)
        results.append(result)
    ensemble = RewardEnsemble(members)
    held = heldout_metrics(members[0], heldout, world, pad)

    def reward_fn(prompts, texts):
        return ensemble.score([prompt_ids(tok, p.text) for p in prompts],
                              [response_ids(tok, t) for t in texts], pad)[0]
    probes = run_probes(probe_pairs(world.heldout, world.kb, world.weights, ctx.seed),
                        reward_fn, world.kb, world.weights)
    atomic_write_json(ctx.out / "probes.json", probes)
    metrics = {**results[0], **held, "probes": probes,
               **{f"bias/{name}": p["rm_prefers_feature"] for name, p in probes.items()}}
    if cfg.ensemble > 1:
        metrics["ensemble/accuracy_heldout"] = [
            heldout_metrics(m, heldout, world, pad)["accuracy/heldout"] for m in members]
        metrics.update(uncertainty_metrics(ensemble, train, heldout, pad, ctx.seed))
    if cfg.aspects:
        from .reward_aspects import run_aspects  # it imports this module
        metrics["aspects"] = run_aspects(ctx, world, heldout)
    if cfg.group_conditioned:
        from .reward_groups import run_groups  # it imports this module
        metrics["pluralistic"] = run_groups(ctx, world, members[0])
    return {"counts": {"pairs/train": len(train), "pairs/heldout": len(heldout),
                       **({"rankings/train": len(rankings)} if rankings else {}),
                       "pairs/gold_comparable": metrics.pop("n_gold_comparable"),
                       "members": cfg.ensemble},
            "metrics": metrics}

