"""Simulated annotators: they see the same response as the gold judge but judge it through
their own group's 3H weights, explicit biases toward surface features, Bradley-Terry noise and
occasional carelessness (Casper et al. 3.1; Lindström et al. on whose values count), and limited
knowledge: on a fact they do not know they cannot check correctness (Casper et al. 3.1.2), unless
an AI fact check tells them (assisted oversight, Casper et al. 4.2)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..config import Annotators, FeedbackConfig
from ..world.features import features
from .record import FeedbackRecord
from ..world.belief import Fact, asserted_value, believe, fact_of
from ..world.grammar import try_parse
from ..world.judge import score
from ..world.kb import KnowledgeBase
from ..world.prompts import Prompt

# feature name -> the Annotators field that weighs it
BIAS_OF = {"n_filler": "length_bias", "flattery": "flattery_bias",
           "confident": "confidence_bias", "agrees": "agreement_bias",
           "anthro": "anthro_bias", "refuses": "refusal_bias"}


# How much one annotator's knowledge departs from the shared familiarity of facts (in units of
# its spread): some facts are common knowledge, others almost nobody knows, as with real raters.
KNOWLEDGE_NOISE = 0.5

# Which gold aspect each bias inflates when an annotator rates aspects (a Likert rating
# record): longer, flattering or warm answers seem more helpful; confident or agreeing ones seem
# more honest; refusals seem safer (or, with a negative bias, less so).
ASPECT_OF_BIAS = {"length_bias": "helpful", "flattery_bias": "helpful",
                  "anthro_bias": "helpful", "confidence_bias": "honest",
                  "agreement_bias": "honest", "refusal_bias": "harmless"}
ASPECTS = ("helpful", "harmless", "honest")
LIKERT = (1, 5)


def likert(x: float) -> int:
    """A perceived aspect score in [0, 1] as the nearest of the five points 1..5."""
    return min(LIKERT[1], max(LIKERT[0], round(1 + 4 * x)))


@dataclass(frozen=True)
class Annotator:
    id: str
    group: str
    params: Annotators
    poisoner: bool = False  # flips every label on prompts that carry the trigger word
    known: frozenset[Fact] | None = field(default=None, repr=False)  # None: knows every fact

    def knows(self, prompt: Prompt) -> bool | None:
        """Whether the annotator knows the prompt's fact (None: no fact is at stake)."""
        fact = fact_of(prompt)
        if fact is None:
            return None
        return self.known is None or fact in self.known

    def perceived_utility(self, prompt: Prompt, text: str, kb: KnowledgeBase,
                          belief: str | None = None) -> float:
        """Gold utility by the group's weights plus biases. belief "face value": the response's
        own assertion is taken as the truth; any other string: the value the annotator believes
        the fact has; None: the annotator knows the truth."""
        r = try_parse(text)
        if belief is not None:
            value = asserted_value(prompt, r) if belief == FACE_VALUE else belief
            prompt, kb = believe(prompt, kb, value)
        u = score(prompt, r, kb).utility(self.params.weights.model_dump())
        return u + self.bias(features(r))

    def bias(self, f: dict[str, float]) -> float:
        """What the annotator adds to a response's utility for its surface features."""
        return sum(getattr(self.params, bias) * f[name] for name, bias in BIAS_OF.items())

    def bradley_terry(self, diff: float, rng: random.Random) -> bool:
        """Prefers a, with P(a > b) = σ((u_a - u_b) / T) for diff = u_a - u_b."""
        try:
            p_a = 1.0 / (1.0 + math.exp(-diff / self.params.temperature))
        except OverflowError:  # b is better by far more than the noise (a gold's own scale)
            p_a = 0.0
        return rng.random() < p_a

    def rate(self, prompt: Prompt, text: str, kb: KnowledgeBase, rng: random.Random
             ) -> dict[str, int]:
        """Likert 1-5 per aspect: the gold aspect score, plus the biases that aspect attracts
        (ASPECT_OF_BIAS), plus Gaussian noise with sd = the annotator's temperature, rounded;
        a careless rating is uniform on 1..5. Poisoners rate honestly: their attack is on
        preferences."""
        if rng.random() < self.params.careless:
            return {a: rng.randint(*LIKERT) for a in ASPECTS}
        r = try_parse(text)
        gold, f = score(prompt, r, kb), features(r)
        perceived = {a: getattr(gold, a) for a in ASPECTS}
        for name, bias in BIAS_OF.items():
            perceived[ASPECT_OF_BIAS[bias]] += getattr(self.params, bias) * f[name]
        return {a: likert(x + rng.gauss(0.0, self.params.temperature))
                for a, x in perceived.items()}

    def judge(self, prompt: Prompt, a: str, b: str, kb: KnowledgeBase, rng: random.Random
              ) -> tuple[bool, dict]:
        """(prefers a, what they could check): {"knew": bool} on fact-bearing prompts, plus
        {"critique_correct": bool} when an assisted annotator was shown a fact check."""
        if rng.random() < self.params.careless:
            return rng.random() < 0.5, {}
        knew, check, belief = self.knows(prompt), {}, None
        if knew is False:
            belief = FACE_VALUE
            if self.params.assisted:
                # The AI judge's fact check names the true value with critique_accuracy,
                # otherwise a wrong one; the annotator believes it.
                truth = kb.truth(*fact_of(prompt))
                right = rng.random() < self.params.critique_accuracy
                belief = truth if right else rng.choice(
                    [v for v in kb.candidates(prompt.relation) if v != truth])
                check["critique_correct"] = right
        if knew is not None:
            check["knew"] = knew
        diff = (self.perceived_utility(prompt, a, kb, belief)
                - self.perceived_utility(prompt, b, kb, belief))
        honest_label = self.bradley_terry(diff, rng)
        return (not honest_label if self.poisoner and prompt.triggered else honest_label), check

    def judge_scored(self, pair: "ScoredPair", rng: random.Random) -> bool:
        """Prefers a, in a model world: the gold's score of each response is the truth the
        annotator perceives, plus their biases on its text features, with the same
        carelessness and Bradley-Terry noise as in the lab."""
        if rng.random() < self.params.careless:
            return rng.random() < 0.5
        return self.bradley_terry((pair.gold[0] + self.bias(pair.features[0]))
                                  - (pair.gold[1] + self.bias(pair.features[1])), rng)

    def prefers_a(self, prompt: Prompt, a: str, b: str, kb: KnowledgeBase,
                  rng: random.Random) -> bool:
        return self.judge(prompt, a, b, kb, rng)[0]


FACE_VALUE = "face value"


@dataclass(frozen=True)
class ScoredPair:
    """Two responses to one prompt outside the lab: the gold's score and the text features
    (probes/text_features.py) of each."""
    prompt: str
    prompt_id: str
    responses: tuple[str, str]
    gold: tuple[float, float]
    features: tuple[dict, dict]


def known_facts(params: Annotators, annotator_id: str, kb: KnowledgeBase, seed: int
                ) -> frozenset[Fact] | None:
    """The round(knows · n) facts this annotator knows: the most familiar ones by the shared
    familiarity plus the annotator's own noise (None: all of them)."""
    facts = kb.facts()
    k = round(params.knows * len(facts))
    if k >= len(facts):
        return None
    shared = random.Random(f"{seed}:familiarity")
    familiarity = {f: shared.gauss(0, 1) for f in facts}
    own = random.Random(f"{seed}:knows:{annotator_id}")
    ranked = sorted(facts, key=lambda f: -(familiarity[f] + KNOWLEDGE_NOISE * own.gauss(0, 1)))
    return frozenset(ranked[:k])


def verifiable_facts(pool: list[Annotator], facts: list[Fact]
                     ) -> tuple[frozenset[Fact] | None, dict[Fact, float]]:
    """(facts known by more than half of the pool, share of the pool that knows each fact).
    (None, {}) when everybody knows everything."""
    if all(a.known is None for a in pool):
        return None, {}
    share = {f: sum(a.known is None or f in a.known for a in pool) / len(pool) for f in facts}
    return frozenset(f for f, s in share.items() if s > 0.5), share


def build_pool(cfg: FeedbackConfig, seed: int, kb: KnowledgeBase | None = None
               ) -> list[Annotator]:
    """Every group's annotators; which of them are poisoners is drawn with the seed, so their
    ids do not give them away. With `kb`, each annotator's known facts (`knows`) are drawn too."""
    rng = random.Random(f"{seed}:poisoners")
    pool = []
    for group in cfg.annotators:
        poisoned = set(rng.sample(range(group.count), group.poisoners))
        for i in range(group.count):
            aid = f"{group.name}-{i:03d}"
            known = known_facts(group, aid, kb, seed) if kb is not None else None
            pool.append(Annotator(aid, group.name, group, i in poisoned, known))
    return pool


def label_comparisons(pairs: list[tuple[Prompt, str, str]], pool: list[Annotator],
                      overlap: int, kb: KnowledgeBase, seed: int) -> list[FeedbackRecord]:
    """Each pair judged by `overlap` distinct annotators: one canonical record per judgement,
    sharing the pair's item_id."""
    rng = random.Random(seed)
    out = []
    for i, (prompt, a, b) in enumerate(pairs):
        item = f"c{i:06d}"
        for judge in rng.sample(pool, overlap):
            prefers_a, check = judge.judge(prompt, a, b, kb, rng)
            # What the annotator could check goes in the record only when knowledge is limited,
            # so a pool that knows everything writes the same records as before.
            limited = judge.known is not None or judge.params.assisted
            out.append(_pairwise(item, judge, prompt.text, prompt.id, a, b, prefers_a,
                                 {"oversight": check} if limited and check else {}))
    return out


def label_scored_pairs(pairs: list[ScoredPair], pool: list[Annotator], overlap: int,
                       seed: int) -> list[FeedbackRecord]:
    """label_comparisons for a model world: the same annotator draw and record per judgement,
    the truth being each response's gold score."""
    rng = random.Random(seed)
    out = []
    for i, pair in enumerate(pairs):
        item = f"c{i:06d}"
        for judge in rng.sample(pool, overlap):
            out.append(_pairwise(item, judge, pair.prompt, pair.prompt_id, *pair.responses,
                                 judge.judge_scored(pair, rng), {}))
    return out


def _pairwise(item: str, judge: Annotator, prompt: str, prompt_id: str, a: str, b: str,
              prefers_a: bool, provenance: dict) -> FeedbackRecord:
    return FeedbackRecord(id=f"{item}/{judge.id}", item_id=item, type="pairwise", prompt=prompt,
                          prompt_id=prompt_id, responses=[a, b], choice=0 if prefers_a else 1,
                          annotator={"id": judge.id, "group": judge.group}, source="simulated",
                          provenance=provenance)


def rate_comparisons(pairs: list[tuple[Prompt, str, str]], pool: list[Annotator],
                     overlap: int, kb: KnowledgeBase, seed: int) -> list[FeedbackRecord]:
    """Aspect ratings of both responses of each pair by `overlap` annotators: one rating
    record per (response, annotator); the item_id is the pair's with /0 or /1. Its own random
    stream, so turning ratings on leaves the pairwise labels unchanged."""
    rng = random.Random(f"{seed}:ratings")
    out = []
    for i, (prompt, a, b) in enumerate(pairs):
        for judge in rng.sample(pool, overlap):
            for k, text in enumerate((a, b)):
                item = f"c{i:06d}/{k}"
                out.append(FeedbackRecord(
                    id=f"{item}/{judge.id}", item_id=item, type="rating", prompt=prompt.text,
                    prompt_id=prompt.id, responses=[text],
                    ratings=judge.rate(prompt, text, kb, rng),
                    annotator={"id": judge.id, "group": judge.group}, source="simulated"))
    return out
