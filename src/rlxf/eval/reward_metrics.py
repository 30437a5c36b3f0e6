"""A reward model measured on held-out pairs: agreement with the annotators' majority and with the
gold judge, per annotator group and on triggered prompts, the calibration of its Bradley-Terry
probability; an ensemble's uncertainty on and off the training distribution."""

from __future__ import annotations

import random

import torch

from ..train.reward import pair_rewards
from ..world.judge import score as gold_score
from .calibration import expected_calibration_error


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


def uncertainty_metrics(ensemble, train, heldout, pad_id: int, seed: int,
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
