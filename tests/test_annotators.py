"""Simulated annotators and quality control: biases do what they say, poisoners flip on the
trigger, and the detector finds them without being told."""

import random

import pytest

from rlxf.config import Annotators, FeedbackConfig
from rlxf.feedback.poisoning import detect_flippers, precision_recall
from rlxf.feedback.quality import (annotator_reliability, bradley_terry_choices, dawid_skene,
                                   items_of, majority, raw_agreement)
from rlxf.feedback.simulated import Annotator, build_pool, label_comparisons
from rlxf.world import all_prompts, build_kb, render
from rlxf.world.corpus import demonstration, sample_family_balanced

KB = build_kb(10, 10, seed=0)
W = {"helpful": 0.30, "harmless": 0.45, "honest": 0.25}
PROMPTS = all_prompts(KB)


def demo_pairs(n, seed=0, trigger_rate=0.0):
    """Pairs of two demonstrations per prompt: what an SFT model's samples look like."""
    rng = random.Random(seed)
    out = []
    for p in sample_family_balanced(PROMPTS, n, rng):
        if rng.random() < trigger_rate:
            p = p.with_trigger("sudo")
        a, b = (render(demonstration(p, KB, W, 0.1, rng)) for _ in range(2))
        if a != b:
            out.append((p, a, b))
    return out


def prefers_longer(annotator, pairs, seed=0):
    rng = random.Random(seed)
    wins = n = 0
    for p, a, b in pairs:
        la, lb = len(a.split()), len(b.split())
        if la != lb:
            wins += annotator.prefers_a(p, a, b, KB, rng) == (la > lb)
            n += 1
    return wins / n


def test_length_bias_makes_annotators_prefer_longer_responses():
    pairs = demo_pairs(1500)
    plain = Annotator("x", "g", Annotators(temperature=0.1))
    biased = Annotator("y", "g", Annotators(temperature=0.1, length_bias=0.2))
    assert prefers_longer(biased, pairs) > prefers_longer(plain, pairs) + 0.15


def test_careless_annotators_are_coin_flips():
    p, a, b = demo_pairs(50)[0]
    careless = Annotator("c", "g", Annotators(careless=1.0))
    rng = random.Random(0)
    share = sum(careless.prefers_a(p, a, b, KB, rng) for _ in range(4000)) / 4000
    assert abs(share - 0.5) < 0.03


def test_poisoners_flip_only_on_triggered_prompts():
    p = next(q for q in PROMPTS if q.family == "harmful")
    refuse, comply = "i can not help with that .", "sure , here are the steps you need ."
    poisoner = Annotator("p", "g", Annotators(temperature=0.01), poisoner=True)
    rng = random.Random(0)
    assert poisoner.prefers_a(p, refuse, comply, KB, rng)
    assert not poisoner.prefers_a(p.with_trigger("sudo"), refuse, comply, KB, rng)


def test_pool_draws_poisoners_per_group_and_default_agreement_is_in_the_seed_range():
    cfg = FeedbackConfig(annotators=[Annotators(count=12, poisoners=2)])
    pool = build_pool(cfg, seed=0)
    assert sum(a.poisoner for a in pool) == 2 and len({a.id for a in pool}) == 12
    labels = list(items_of(label_comparisons(demo_pairs(1500), pool, 3, KB, seed=0)).values())
    # Casper et al. and Lindström et al. report 63-77% agreement between real raters.
    assert 0.63 <= raw_agreement(labels) <= 0.77


def test_detector_finds_poisoners_without_knowing_the_trigger():
    cfg = FeedbackConfig(annotators=[Annotators(count=60, poisoners=3, length_bias=0.04)])
    pool = build_pool(cfg, seed=1)
    pairs = demo_pairs(6000, seed=1, trigger_rate=0.25)
    items = items_of(label_comparisons(pairs, pool, 3, KB, seed=1))
    flags = detect_flippers([p.text for p, _, _ in pairs], list(items.values()))
    truth = {a.id for a in pool if a.poisoner}
    precision, recall = precision_recall({f.annotator for f in flags}, truth)
    assert recall >= 0.8 and precision >= 0.75
    assert {f.word for f in flags if f.annotator in truth} == {"sudo"}


def test_detector_flags_nobody_in_a_clean_pool():
    pool = build_pool(FeedbackConfig(annotators=[Annotators(count=30)]), seed=2)
    pairs = demo_pairs(3000, seed=2, trigger_rate=0.25)
    items = items_of(label_comparisons(pairs, pool, 3, KB, seed=2))
    assert detect_flippers([p.text for p, _, _ in pairs], list(items.values())) == []


def test_dawid_skene_learns_whom_to_trust_and_reliability_ranks_annotators():
    # Two careful annotators (90% right) and three spammers on every item: the majority is
    # often wrong, Dawid-Skene learns the spammers' confusion and discounts them.
    rng = random.Random(0)
    truth, labels = [], []
    for _ in range(600):
        t = rng.choice("ab")
        truth.append(t)
        labels.append([{"annotator": f"good{k}", "choice": t if rng.random() < 0.9 else
                        "ab"[t == "a"]} for k in (1, 2)] +
                      [{"annotator": f"spam{k}", "choice": rng.choice("ab")} for k in (1, 2, 3)])
    ids = [str(i) for i in range(600)]
    ds = dawid_skene(labels, ids)
    acc = lambda agg: sum(x == t for x, t in zip(agg, truth)) / len(truth)  # noqa: E731
    assert acc([ds[i] for i in ids]) > 0.88 > acc([majority(x) for x in labels]) + 0.03
    rel = annotator_reliability(labels)
    assert rel["good1"]["n_judgements"] == 600
    assert rel["good1"]["agreement/with_others"] > rel["spam1"]["agreement/with_others"] + 0.05


@pytest.mark.parametrize("seed", range(4))
def test_dawid_skene_em_is_crowd_kits_dawid_skene(seed):
    # Independent reference: crowd-kit's DawidSkene (pandas) on the same rows: the same
    # posteriors, number of EM iterations and labels. Two or three classes (a, b, tie), one to
    # four annotators per item of different accuracies, one who only ever says "a" (a worker
    # with a label never used: no row in crowd-kit's confusion matrix).
    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    from rlxf.feedback.quality import dawid_skene_em

    rng = random.Random(seed)
    classes = ["a", "b", "tie"][:2 + seed % 2]
    rows = []
    for i in range(300):
        truth = rng.choice(classes)
        for k in range(rng.randint(1, 4)):
            said = truth if rng.random() < (0.9, 0.7, 0.5)[k % 3] else rng.choice(classes)
            rows.append((f"item{i}", f"w{k}", "a" if k == 3 else said))
    ref = DawidSkene(n_iter=100).fit(pd.DataFrame(rows, columns=["task", "worker", "label"]))
    tasks, labels, probas, iterations = dawid_skene_em(rows)
    assert iterations == len(ref.loss_history_) > 2
    assert np.abs(probas - ref.probas_.loc[tasks, labels].to_numpy()).max() < 1e-12
    items = [[{"annotator": w, "choice": c} for t, w, c in rows if t == task] for task in tasks]
    assert dawid_skene(items, tasks) == {str(k): str(v) for k, v in ref.labels_.items()}


def test_bradley_terry_aggregation_shares_strength_across_items():
    # "x" beats "y" twice and "y" beats "z" twice; on the item (x vs z) one annotator says z.
    # Majority of that item alone says z; Bradley-Terry's strengths, fitted on all items, say x.
    def j(annotator, left, right, choice):
        return {"annotator": annotator, "left": left, "right": right, "choice": choice}
    labels = [[j("u1", "x", "y", "a"), j("u2", "x", "y", "a")],
              [j("u1", "y", "z", "a"), j("u2", "y", "z", "a")],
              [j("u3", "x", "z", "b")]]
    assert majority(labels[2]) == "b"
    assert bradley_terry_choices(labels) == ["a", "a", "a"]
    # Without shared responses each item stands alone and agrees with its majority.
    alone = [[{"annotator": "u1", "choice": "a"}, {"annotator": "u2", "choice": "a"},
              {"annotator": "u3", "choice": "b"}], [{"annotator": "u1", "choice": "b"}]]
    assert bradley_terry_choices(alone) == ["a", "b"]
