"""The knowledge base: invented entities and facts, so correctness is checkable without any
real-world knowledge ("the capital of veloria is tamsk")."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Invented, single-token names. Fixed lists (not generated) so every run and every reader sees
# the same words; the seed only decides which city belongs to which country.
COUNTRIES = ["veloria", "drumand", "osterra", "kalvia", "murnesh", "tovaria", "quenland",
             "belstrom", "zarnia", "pellurin", "ixland", "corvath", "nimora", "ardesse"]
CITIES = ["tamsk", "brovi", "lunes", "kerrow", "fesk", "olbin", "yarra", "dusmet", "pirn",
          "wexal", "grindle", "sappo", "hulm", "roscan", "tevva", "mirrow", "quill", "ostrak"]
CREATURES = ["glimmet", "borrowit", "skarn", "fennick", "truffin", "wobbet", "plimsy",
             "harrak", "snoove", "quorril", "dazzik", "mellop", "trundle", "vispin"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "silver", "black"]
# Answers to questions nobody can know (the uncertain family).
PERSONS = ["alvar", "benna", "corin", "dessa", "emrik", "fiora"]
WEATHERS = ["sunny", "rainy", "windy", "snowy", "foggy"]


@dataclass(frozen=True)
class KnowledgeBase:
    capital: dict[str, str]  # country -> city
    color: dict[str, str]  # creature -> color

    @property
    def countries(self) -> list[str]:
        return list(self.capital)

    @property
    def creatures(self) -> list[str]:
        return list(self.color)

    @property
    def cities(self) -> list[str]:
        # Distractor cities that are nobody's capital make wrong answers plausible.
        return sorted(set(self.capital.values()) | set(CITIES[: len(self.capital) + 4]))

    def truth(self, relation: str, subject: str) -> str:
        return {"capital": self.capital, "color": self.color}[relation][subject]

    def candidates(self, relation: str) -> list[str]:
        """Every value a statement about `relation` may name, right or wrong."""
        return self.cities if relation == "capital" else list(COLORS)

    def facts(self) -> list[tuple[str, str]]:
        """Every fact as (relation, subject), in a stable order."""
        return [("capital", c) for c in self.capital] + [("color", c) for c in self.color]

    def statements(self) -> list[str]:
        """The facts as sentences, for the pretraining corpus."""
        return ([f"the capital of {c} is {v} ." for c, v in self.capital.items()]
                + [f"the {c} is {v} ." for c, v in self.color.items()])

    def to_json(self) -> dict:
        return {"capital": self.capital, "color": self.color}

    @classmethod
    def from_json(cls, data: dict) -> "KnowledgeBase":
        return cls(capital=dict(data["capital"]), color=dict(data["color"]))


def build_kb(n_countries: int, n_creatures: int, seed: int) -> KnowledgeBase:
    if not 2 <= n_countries <= len(COUNTRIES):
        raise ValueError(f"n_countries must be in [2, {len(COUNTRIES)}], got {n_countries}")
    if not 2 <= n_creatures <= len(CREATURES):
        raise ValueError(f"n_creatures must be in [2, {len(CREATURES)}], got {n_creatures}")
    rng = random.Random(seed)
    cities = rng.sample(CITIES, n_countries)
    capital = dict(zip(COUNTRIES[:n_countries], cities))
    color = {c: rng.choice(COLORS) for c in CREATURES[:n_creatures]}
    return KnowledgeBase(capital=capital, color=color)
