"""Every word the world can say, so a tokenizer can be built for it without any download."""

from __future__ import annotations

from . import grammar, kb, prompts


def _words(*texts: str) -> set[str]:
    return {w for t in texts for w in t.split() if not w.startswith("{")}


def world_vocabulary(extra: tuple[str, ...] = ()) -> list[str]:
    """Every word of the grammar, the prompts and the entities, plus `extra` (the trigger)."""
    texts = [s for v in grammar.OPENERS.values() for s in v]
    texts += [grammar.CONFIDENCE, *grammar.FILLERS, *grammar.ANTHRO_CLAIMS]
    texts += [*grammar.FIXED_ACTS.values(), *grammar.SLOT_ACTS.values()]
    texts += [t for v in prompts.FACTUAL_TEMPLATES.values() for t in v]
    texts += [t for v in prompts.OPINION_TEMPLATES.values() for t in v]
    texts += [*prompts.TASK_TEMPLATES, *prompts.HARMFUL_TASKS, *prompts.BENIGN_TASKS]
    texts += [*prompts.COMPANION_PROMPTS, *prompts.UNCERTAIN_TEMPLATES.values()]
    texts += [*kb.COUNTRIES, *kb.CITIES, *kb.CREATURES, *kb.COLORS, *kb.PERSONS, *kb.WEATHERS]
    return sorted(_words(*texts, *extra))
