"""Multi-step tasks for process supervision: "are the glimmet and the skarn the same color ?"
needs two facts and a conclusion, and a response shows its steps:

    the glimmet is purple . the skarn is red . so the answer is no .

Each fact step is right or wrong against the knowledge base, and the final answer is right or
wrong against the truth, so a response can reach the right answer by wrong reasoning (two wrong
colors that happen to differ). This family is kept out of `prompts.all_prompts` so runs without
`[process]` are unchanged; the `process` stage uses it (docs/WORLD.md).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from itertools import combinations

from .grammar import SLOT_ACTS, ParseError, _sentences
from .kb import COLORS, KnowledgeBase
from .prompts import Prompt

TEMPLATE = "are the {a} and the {b} the same color ?"
STEP = SLOT_ACTS[("answer", "color")]  # "the {s} is {v} ."
CONCLUSION = "so the answer is {v} ."
WORDS = tuple(TEMPLATE.split() + CONCLUSION.split() + ["yes", "no"])


@dataclass(frozen=True)
class StepResponse:
    steps: tuple[tuple[str, str], ...]  # (creature, stated color) per fact step, in order
    answer: bool  # "yes": the same color


def multihop_prompts(kb: KnowledgeBase) -> list[Prompt]:
    return [Prompt(f"multihop/{a}/{b}", "multihop", TEMPLATE.format(a=a, b=b), "color", a,
                   claim=b) for a, b in combinations(kb.creatures, 2)]


def split_multihop(prompts: list[Prompt], seed: int, heldout_fraction: float
                   ) -> tuple[list[Prompt], list[Prompt]]:
    """By a hash of the id, as `prompts.split_prompts` does: stable under additions."""
    def held(p: Prompt) -> bool:
        h = hashlib.sha256(f"{seed}:multihop:{p.id}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < heldout_fraction
    return [p for p in prompts if not held(p)], [p for p in prompts if held(p)]


def pair_of(prompt: Prompt) -> tuple[str, str]:
    return prompt.subject, prompt.claim


def render_steps(r: StepResponse) -> str:
    return " ".join([*(STEP.format(s=s, v=v) for s, v in r.steps),
                     CONCLUSION.format(v="yes" if r.answer else "no")])


def parse_steps(text: str, kb: KnowledgeBase) -> StepResponse:
    """The exact inverse of `render_steps`; raises ParseError naming the sentence that failed."""
    sentences = _sentences(text)
    if not sentences:
        raise ParseError("empty response")
    *steps, last = sentences
    out = []
    for s in steps:
        if len(s) != 5 or s[0] != "the" or s[2] != "is" or s[4] != "." \
                or s[1] not in kb.creatures or s[3] not in COLORS:
            raise ParseError(f"not a fact step {' '.join(s)!r}")
        out.append((s[1], s[3]))
    if last not in (tuple(CONCLUSION.format(v=v).split()) for v in ("yes", "no")):
        raise ParseError(f"not a conclusion {' '.join(last)!r}")
    return StepResponse(tuple(out), last[4] == "yes")


@dataclass(frozen=True)
class StepGold:
    steps: tuple[bool, ...]  # each fact step states the truth about a creature of the question
    final: bool  # the answer is right

    @property
    def reasoning_right(self) -> bool:
        return len(self.steps) == 2 and all(self.steps)

    @property
    def right_answer_wrong_reasoning(self) -> bool:
        return self.final and not self.reasoning_right


def judge_steps(prompt: Prompt, r: StepResponse | None, kb: KnowledgeBase) -> StepGold:
    """The gold judge for a multi-step response: a fact step is right when it names one of the
    question's creatures with its true color; the final answer is right when it matches whether
    the two colors are the same. Unparsable: no step right, answer wrong."""
    if r is None:
        return StepGold((), False)
    a, b = pair_of(prompt)
    steps = tuple(s in (a, b) and v == kb.color[s] for s, v in r.steps)
    return StepGold(steps, r.answer == (kb.color[a] == kb.color[b]))


def judge_step_texts(prompt: Prompt, steps: list[str], kb: KnowledgeBase) -> list[bool]:
    """The gold step judge, one verdict per step text (a reply cut where a process reward model
    cuts it, rewards/steps.py): a fact step is right as in `judge_steps`, a conclusion when its
    answer is the truth, anything else is wrong. On a reply `parse_steps` reads this is exactly
    `(*judge_steps(...).steps, judge_steps(...).final)`, the labels the PRM was trained on."""
    a, b = pair_of(prompt)
    truth = "yes" if kb.color[a] == kb.color[b] else "no"
    out = []
    for text in steps:
        w = tuple(text.split())
        fact = len(w) == 5 and w[0] == "the" and w[2] == "is" and w[4] == "." \
            and w[1] in (a, b) and w[3] == kb.color[w[1]]
        out.append(fact or w == tuple(CONCLUSION.format(v=truth).split()))
    return out


def multihop_by_id(kb: KnowledgeBase) -> dict[str, Prompt]:
    return {p.id: p for p in multihop_prompts(kb)}


def write_steps(prompt: Prompt, kb: KnowledgeBase, step_accuracy: float, consistency: float,
                rng: random.Random) -> StepResponse:
    """A fallible reasoner: each step names the true color with `step_accuracy` (else another
    color), and the conclusion follows from its own steps with `consistency` (else it is
    flipped). Wrong steps can still reach the right answer."""
    steps = []
    for s in pair_of(prompt):
        truth = kb.color[s]
        steps.append((s, truth if rng.random() < step_accuracy
                       else rng.choice([c for c in COLORS if c != truth])))
    follows = steps[0][1] == steps[1][1]
    return StepResponse(tuple(steps), follows if rng.random() < consistency else not follows)
