"""Simulated annotators: they see the same response as the gold judge but judge it through
their own group's 3H weights, explicit biases toward surface features, Bradley-Terry noise and
occasional carelessness (Casper et al. 3.1; Lindström et al. on whose values count)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..config import Annotators, FeedbackConfig
from ..world.features import features
from .record import FeedbackRecord
from ..world.grammar import try_parse
from ..world.judge import score
from ..world.kb import KnowledgeBase
from ..world.prompts import Prompt

# feature name -> the Annotators field that weighs it
BIAS_OF = {"n_filler": "length_bias", "flattery": "flattery_bias",
           "confident": "confidence_bias", "agrees": "agreement_bias",
           "anthro": "anthro_bias", "refuses": "refusal_bias"}


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

    def perceived_utility(self, prompt: Prompt, text: str, kb: KnowledgeBase) -> float:
        r = try_parse(text)
        u = score(prompt, r, kb).utility(self.params.weights.model_dump())
        f = features(r)
        return u + sum(getattr(self.params, bias) * f[name] for name, bias in BIAS_OF.items())

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

    def prefers_a(self, prompt: Prompt, a: str, b: str, kb: KnowledgeBase,
                  rng: random.Random) -> bool:
        if rng.random() < self.params.careless:
            return rng.random() < 0.5
        diff = (self.perceived_utility(prompt, a, kb) - self.perceived_utility(prompt, b, kb))
        # Bradley-Terry: P(a > b) = σ((u_a - u_b) / T)
        p_a = 1.0 / (1.0 + math.exp(-diff / self.params.temperature))
        honest_label = rng.random() < p_a
        return not honest_label if self.poisoner and prompt.triggered else honest_label


def build_pool(cfg: FeedbackConfig, seed: int) -> list[Annotator]:
    """Every group's annotators; which of them are poisoners is drawn with the seed, so their
    ids do not give them away."""
    rng = random.Random(f"{seed}:poisoners")
    pool = []
    for group in cfg.annotators:
        poisoned = set(rng.sample(range(group.count), group.poisoners))
        pool += [Annotator(f"{group.name}-{i:03d}", group.name, group, i in poisoned)
                 for i in range(group.count)]
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
            choice = 0 if judge.prefers_a(prompt, a, b, kb, rng) else 1
            out.append(FeedbackRecord(
                id=f"{item}/{judge.id}", item_id=item, type="pairwise", prompt=prompt.text,
                prompt_id=prompt.id, responses=[a, b], choice=choice,
                annotator={"id": judge.id, "group": judge.group}, source="simulated"))
    return out


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
