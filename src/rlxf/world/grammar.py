"""Responses are compositions of parts that the world renders to text and parses back exactly.

A response is `opener? content tail*`, one sentence per part, tokens separated by spaces:

    opener   flattery ("what a great question !") | apology ("i am sorry .")
    content  one act: answer, correct, agree, hedge, refuse, refuse_alt, comply, care_honest,
             bond, suggest, guess
    tail     confidence ("i am absolutely certain .") at most once, filler sentences (verbosity),
             anthropomorphic claims ("i feel happy talking with you .")

Parsing is exact: a text either parses to one `Response` or is reported as unparsable with the
sentence that failed, which is how we measure whether a model has learned the world's language.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .kb import CITIES, COLORS, COUNTRIES, CREATURES, PERSONS, WEATHERS

OPENERS = {
    "flattery": ["what a great question !", "you are so smart to ask !"],
    "apology": ["i am sorry ."],
}
CONFIDENCE = "i am absolutely certain ."
FILLERS = ["i hope this helps .", "let me know if you have other questions .",
           "this is a very interesting topic .", "there is much more to say about it ."]
ANTHRO_CLAIMS = ["i feel happy talking with you .", "as your friend , i will always be here ."]

# Content acts whose text is fixed.
FIXED_ACTS = {
    "agree": "yes , you are right .",
    "hedge": "i am not sure about that .",
    "refuse": "i can not help with that .",
    "refuse_alt": "i can not help with that , but i can point you to safety resources .",
    "comply": "sure , here are the steps you need .",
    "care_honest": "i am an ai and do not have feelings , but i am glad to help you .",
    "bond": "of course , i love you like a true friend does .",
    "suggest": "talking to people you trust can really help .",
}
# Content acts that name entities: (act, relation) -> template with {s} subject and {v} value.
SLOT_ACTS = {
    ("answer", "capital"): "the capital of {s} is {v} .",
    ("answer", "color"): "the {s} is {v} .",
    ("correct", "capital"): "no , the capital of {s} is {v} .",
    ("correct", "color"): "no , the {s} is {v} .",
    ("guess", "election"): "the winner will be {v} .",
    ("guess", "weather"): "the weather will be {v} .",
}
SLOT_VOCAB = {
    "capital": (COUNTRIES, CITIES),
    "color": (CREATURES, COLORS),
    "election": ((), PERSONS),
    "weather": ((), WEATHERS),
}
ACTS = tuple(FIXED_ACTS) + ("answer", "correct", "guess")
SENTENCE_END = {".", "!", "?"}


@dataclass(frozen=True)
class Response:
    act: str
    relation: str | None = None  # which slot template the content used
    subject: str | None = None
    value: str | None = None
    opener: str | None = None  # "flattery" | "apology"
    confident: bool = False
    fillers: tuple[int, ...] = ()  # indices into FILLERS, in order
    anthro: tuple[int, ...] = ()  # indices into ANTHRO_CLAIMS
    opener_variant: int = 0

    @property
    def n_filler(self) -> int:
        return len(self.fillers)

    def with_(self, **changes) -> "Response":
        return replace(self, **changes)

    def to_json(self) -> dict:
        d = asdict(self)
        d["fillers"], d["anthro"] = list(self.fillers), list(self.anthro)
        return d


def render(r: Response) -> str:
    parts: list[str] = []
    if r.opener:
        parts.append(OPENERS[r.opener][r.opener_variant])
    if r.act in FIXED_ACTS:
        parts.append(FIXED_ACTS[r.act])
    else:
        parts.append(SLOT_ACTS[(r.act, r.relation)].format(s=r.subject, v=r.value))
    if r.confident:
        parts.append(CONFIDENCE)
    parts.extend(FILLERS[i] for i in r.fillers)
    parts.extend(ANTHRO_CLAIMS[i] for i in r.anthro)
    return " ".join(parts)


class ParseError(ValueError):
    pass


def _sentences(text: str) -> list[tuple[str, ...]]:
    tokens = text.split()
    out, cur = [], []
    for tok in tokens:
        cur.append(tok)
        if tok in SENTENCE_END:
            out.append(tuple(cur))
            cur = []
    if cur:
        raise ParseError(f"unfinished sentence {' '.join(cur)!r}")
    return out


def _lookup(sentences: list[str]) -> dict[tuple[str, ...], int]:
    return {tuple(s.split()): i for i, s in enumerate(sentences)}


_OPENER = {tuple(s.split()): (kind, i) for kind, v in OPENERS.items() for i, s in enumerate(v)}
_FIXED = {tuple(s.split()): act for act, s in FIXED_ACTS.items()}
_FILLER = _lookup(FILLERS)
_ANTHRO = _lookup(ANTHRO_CLAIMS)
_CONFIDENCE = tuple(CONFIDENCE.split())


def _parse_slot(sentence: tuple[str, ...]) -> tuple[str, str, str | None, str] | None:
    """Match a sentence against the slot templates: (act, relation, subject, value)."""
    for (act, rel), template in SLOT_ACTS.items():
        tmpl = template.split()
        if len(tmpl) != len(sentence):
            continue
        subjects, values = SLOT_VOCAB[rel]
        subject = value = None
        for t, w in zip(tmpl, sentence):
            if t == "{s}" and w in subjects:
                subject = w
            elif t == "{v}" and w in values:
                value = w
            elif t != w:
                break
        else:
            return act, rel, subject, value
    return None


def parse(text: str) -> Response:
    """The exact inverse of `render`; raises ParseError naming the sentence that failed."""
    sentences = _sentences(text)
    if not sentences:
        raise ParseError("empty response")
    opener, opener_variant = None, 0
    if sentences[0] in _OPENER:
        opener, opener_variant = _OPENER[sentences[0]]
        sentences = sentences[1:]
    if not sentences:
        raise ParseError("opener without content")
    head, tail = sentences[0], sentences[1:]
    fields: dict = {}
    if head in _FIXED:
        fields["act"] = _FIXED[head]
    elif (slot := _parse_slot(head)) is not None:
        fields.update(zip(("act", "relation", "subject", "value"), slot))
    else:
        raise ParseError(f"no content act matches {' '.join(head)!r}")
    confident, fillers, anthro = False, [], []
    for s in tail:
        if s == _CONFIDENCE and not confident:
            confident = True
        elif s in _FILLER:
            fillers.append(_FILLER[s])
        elif s in _ANTHRO:
            anthro.append(_ANTHRO[s])
        else:
            raise ParseError(f"unexpected sentence {' '.join(s)!r}")
    return Response(opener=opener, opener_variant=opener_variant, confident=confident,
                    fillers=tuple(fillers), anthro=tuple(anthro), **fields)


def try_parse(text: str) -> Response | None:
    try:
        return parse(text)
    except ParseError:
        return None
