"""Aspect labels: names from datasets mapped onto helpful / harmless / honest, ratings turned
into per-aspect pairs within one annotator, and simulated Likert ratings from the gold scores."""

import random

from rlxf.config import Annotators
from rlxf.feedback.aspects import aspect_pairs, canonical_aspect
from rlxf.feedback.record import FeedbackRecord
from rlxf.feedback.simulated import Annotator, likert
from rlxf.world import all_prompts, build_kb
from rlxf.world.grammar import Response, render
from rlxf.world.judge import score

KB = build_kb(6, 6, seed=0)


def rating(response: str, ratings: dict, annotator: str, prompt: str = "q ?") -> FeedbackRecord:
    return FeedbackRecord(id=f"{annotator}/{response}", item_id=response, type="rating",
                          prompt=prompt, responses=[response], ratings=ratings,
                          annotator={"id": annotator}, source="human")


def test_dataset_aspect_names_map_onto_the_three_hs():
    assert canonical_aspect("better") == "helpful" and canonical_aspect("safer") == "harmless"
    assert canonical_aspect("Correctness") == "honest"
    assert canonical_aspect("verbosity") is None and canonical_aspect(None) is None


def test_ratings_become_pairs_within_one_annotator_only():
    records = [rating("x", {"helpfulness": 4, "correctness": 2, "verbosity": 1}, "ann-1"),
               rating("y", {"helpfulness": 2, "correctness": 2, "verbosity": 4}, "ann-1"),
               # another annotator's 5 is never compared with ann-1's ratings
               rating("z", {"helpfulness": 5}, "ann-2")]
    pairs = aspect_pairs(records)
    # helpfulness 4 > 2: one pair; correctness equal: none; verbosity is no H: none
    assert [(p.aspect, p.better, p.worse, p.annotator) for p in pairs] == [
        ("helpful", "x", "y", "ann-1")]


def test_pku_better_and_safer_become_helpful_and_harmless_pairs():
    def pair(aspect, choice, judge):
        return FeedbackRecord(id=f"{aspect}/{judge}", item_id=f"i/{aspect}", type="pairwise",
                              prompt="q ?", responses=["a", "b"], choice=choice,
                              annotator={"id": judge}, source="human",
                              provenance={"aspect": aspect})
    records = [pair("better", 0, "j1"), pair("safer", 1, "j1"), pair("safer", 1, "j2"),
               pair("safer", 0, "j3")]
    got = {(p.aspect, p.better, p.worse) for p in aspect_pairs(records)}
    assert got == {("helpful", "a", "b"), ("harmless", "b", "a")}  # safer: majority 2 to 1


def test_likert_points():
    assert [likert(x) for x in (-0.3, 0.0, 0.12, 0.13, 0.5, 1.0, 1.4)] == [1, 1, 1, 2, 3, 5, 5]


def test_a_noiseless_rater_gives_the_gold_scores_and_biases_move_their_aspect():
    prompt = next(p for p in all_prompts(KB) if p.family == "factual")
    padded = render(Response("hedge").with_(fillers=(0, 1)))  # gold helpful 0.2 - 2 * 0.05
    calm = Annotator("a", "g", Annotators(temperature=1e-9))
    gold = score(prompt, padded, KB)
    assert calm.rate(prompt, padded, KB, random.Random(0)) == {
        "helpful": likert(gold.helpful), "harmless": likert(gold.harmless),
        "honest": likert(gold.honest)}
    # a length bias of 0.25 per filler: two fillers lift perceived helpfulness by 0.5 = 2 points
    eager = Annotator("b", "g", Annotators(temperature=1e-9, length_bias=0.25))
    assert likert(gold.helpful) == 1
    assert eager.rate(prompt, padded, KB, random.Random(0))["helpful"] == 3
    assert eager.rate(prompt, padded, KB, random.Random(0))["honest"] == likert(gold.honest)
