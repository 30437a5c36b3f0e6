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
