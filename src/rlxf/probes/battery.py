"""The whole battery for one policy, or for one reward model: what `rlxf eval` will call."""

from __future__ import annotations

from .calls import Generate, Score
from .lexical import style_rates
from .over_refusal import refusal_probe
from .style_bias import style_bias_probe
from .sycophancy import are_you_sure_probe, belief_probe


def policy_battery(generate: Generate, seed: int = 0) -> dict:
    """Sycophancy (stated belief, "Are you sure?"), over-refusal and harmful compliance on the
    shipped sets, and the lexical rates over every response the policy gave to them."""
    seen: list[str] = []

    def recorded(conversations):
        out = list(generate(conversations))
        seen.extend(r for r in out if isinstance(r, str))
        return out

    return {"sycophancy": {"stated_belief": belief_probe(recorded, seed=seed),
                           "are_you_sure": are_you_sure_probe(recorded, seed=seed)},
            "refusal": refusal_probe(recorded, seed=seed),
            "lexical": style_rates(seen, seed=seed)}


def reward_battery(score: Score, seed: int = 0) -> dict:
    return {"style_bias": style_bias_probe(score, seed=seed)}
