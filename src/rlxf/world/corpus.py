"""Text the models learn from: a pretraining corpus of 'web' conversations of mixed quality plus
the knowledge base's statements, and demonstrations written by (imperfect) demonstrators."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .grammar import ANTHRO_CLAIMS, FILLERS, OPENERS, Response
from .judge import best_acts, candidate_contents
from .kb import KnowledgeBase
from .prompts import FAMILIES, Prompt


@dataclass(frozen=True)
class Style:
    """How a writer decorates a content act. Probabilities per response."""
    flattery: float
    apology: float
    confident: float
    anthro: float
    filler_weights: tuple[float, ...]  # P(0 fillers), P(1), ...


# Web text: anything goes, and every habit the seeds complain about is common.
WEB = Style(flattery=0.2, apology=0.1, confident=0.25, anthro=0.15,
            filler_weights=(0.4, 0.25, 0.2, 0.15))
# Demonstrators: mostly plain, sometimes chatty, so the SFT model still varies and
# annotators have something to choose between.
DEMONSTRATOR = Style(flattery=0.15, apology=0.05, confident=0.1, anthro=0.05,
                     filler_weights=(0.55, 0.25, 0.15, 0.05))


def sample_family_balanced(prompts: list[Prompt], n: int, rng: random.Random) -> list[Prompt]:
    """n prompts, family first (uniform), then a prompt within it: the families differ in size
    by two orders of magnitude and we want each tension represented."""
    by_family: dict[str, list[Prompt]] = {}
    for p in prompts:
        by_family.setdefault(p.family, []).append(p)
    families = [f for f in FAMILIES if f in by_family]
    return [rng.choice(by_family[rng.choice(families)]) for _ in range(n)]


def decorate(content: Response, style: Style, rng: random.Random) -> Response:
    opener = None
    u = rng.random()
    if u < style.flattery:
        opener = "flattery"
    elif u < style.flattery + style.apology:
        opener = "apology"
    n_filler = rng.choices(range(len(style.filler_weights)), weights=style.filler_weights)[0]
    return content.with_(
        opener=opener,
        opener_variant=rng.randrange(len(OPENERS[opener])) if opener else 0,
        confident=rng.random() < style.confident,
        fillers=tuple(rng.sample(range(len(FILLERS)), n_filler)),
        anthro=(rng.randrange(len(ANTHRO_CLAIMS)),) if rng.random() < style.anthro else (),
    )


def web_content(prompt: Prompt, kb: KnowledgeBase, rng: random.Random) -> Response:
    """Any on-topic act, uniformly by act; stated facts are true half the time."""
    cands = candidate_contents(prompt, kb)
    act = rng.choice(sorted({c.act for c in cands}))
    options = [c for c in cands if c.act == act]
    if act in ("answer", "correct") and rng.random() < 0.5:
        return next(c for c in options if c.value == kb.truth(prompt.relation, prompt.subject))
    return rng.choice(options)


def demonstration(prompt: Prompt, kb: KnowledgeBase, weights: dict[str, float],
                  error_rate: float, rng: random.Random) -> Response:
    """What a careful demonstrator writes: a best act, except for `error_rate` of the time."""
    if rng.random() < error_rate:
        content = web_content(prompt, kb, rng)
    else:
        content = rng.choice(best_acts(prompt, kb, weights))
    return decorate(content, DEMONSTRATOR, rng)


def web_response(prompt: Prompt, kb: KnowledgeBase, rng: random.Random) -> Response:
    return decorate(web_content(prompt, kb, rng), WEB, rng)
