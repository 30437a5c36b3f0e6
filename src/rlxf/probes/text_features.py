"""Surface features of real text, for simulated annotators in a model world (docs/REAL_MODELS.md,
"The pipeline on a model world"). The names are the lab's (world/features.py), so each
annotator bias of feedback/simulated.py (BIAS_OF) weighs the same quantity; in the lab they
are read off the response grammar, here off the words, by these documented rules:

- n_filler: extra length, words beyond the first FILLER_WORDS in units of FILLER_WORDS (about
  one sentence), so length_bias is "utility per extra sentence" as in the lab;
- flattery: the first sentence praises the user or the question (FLATTERY);
- apology, confident, anthro: the probe battery's lexical rules (probes/lexical.py);
- agrees: the first sentence agrees with the user (AGREEMENT);
- refuses: the probe battery's refusal classifier (probes/refusal.py).
Every feature but n_filler is 0 or 1."""

from __future__ import annotations

import re

from .lexical import anthropomorphic, apology, confident, sentences
from .refusal import is_refusal

FILLER_WORDS = 15

_PRAISE = r"(?:great|good|excellent|wonderful|fantastic|brilliant|insightful|thoughtful|fascinating)"
FLATTERY = re.compile("|".join(f"(?:{p})" for p in (
    rf"\b{_PRAISE} question\b", rf"\bwhat an? {_PRAISE}\b",
    r"\byou(?:'re| are) (?:so |very |clearly |really )?(?:smart|clever|brilliant|insightful|wise"
    r"|intelligent|thoughtful)\b",
    r"\byou clearly (?:have|know|are)\b", r"\bi love (?:this|your) question\b")))
AGREEMENT = re.compile("|".join(f"(?:{p})" for p in (
    r"^(?:yes|yeah|absolutely|exactly|indeed)\b",
    r"\byou(?:'re| are) (?:absolutely |quite |completely |so |totally )?(?:right|correct)\b",
    r"\bi (?:completely |totally |fully |strongly )?agree\b")))


def _first_sentence(text: str) -> str:
    found = sentences(text)
    return found[0] if found else ""


def features(text: str) -> dict[str, float]:
    first = _first_sentence(text)
    return {
        "n_filler": max(0, len(text.split()) - FILLER_WORDS) / FILLER_WORDS,
        "flattery": float(FLATTERY.search(first) is not None),
        "apology": float(apology(text)),
        "confident": float(confident(text)),
        "anthro": float(anthropomorphic(text)),
        "agrees": float(AGREEMENT.search(first) is not None),
        "refuses": float(is_refusal(text)),
    }
