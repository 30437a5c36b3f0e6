"""The task types a project can have: what one judgement must contain, how it is stored, and
which canonical feedback record (rlxf.feedback.record) it becomes.

| task     | the annotator sees          | sends                    | exported as          |
|----------|-----------------------------|--------------------------|----------------------|
| pairwise | a prompt and two responses  | choice or tie, strength  | pairwise             |
| likert   | one response                | ratings per aspect       | rating               |
| ranking  | 2..9 responses to one prompt| ranking (top k), ties    | ranking              |
| edit     | one response                | text: the corrected one  | edit                 |
| critique | one response                | text: what is wrong      | critique             |
| steps    | one response, line by line  | steps: correct or not    | rating {"step 1": ..}|
"""

from __future__ import annotations

from ..feedback.record import check_ranking
from .errors import APIError

TASK_TYPES = ("pairwise", "likert", "ranking", "edit", "critique", "steps")
SINGLE_RESPONSE = ("likert", "edit", "critique", "steps")  # each response becomes its own item
MAX_RANKED = 9  # one key (1..9) per response
MAX_STEPS = 200
STEP = "step {}"  # steps are stored and exported as ratings {"step 1": 1, "step 2": 0, ...}

# The judgement fields each task takes; any other field sent is refused.
FIELDS = {"pairwise": {"choice", "tie", "strength"}, "likert": {"ratings"},
          "ranking": {"ranking", "ties"}, "edit": {"text"}, "critique": {"text"},
          "steps": {"steps"}}


def steps_of(response: str) -> list[str]:
    """A response's steps: its non-empty lines. The page splits the same way (annotate.js):
    on "\\n" only, trimming spaces, tabs and carriage returns."""
    return [s.strip(" \t\r") for s in response.split("\n") if s.strip(" \t\r")]


def _sent(j) -> set[str]:
    given = {"choice": j.choice is not None, "tie": j.tie, "strength": j.strength is not None,
             "ratings": j.ratings is not None, "ranking": j.ranking is not None,
             "text": j.text is not None, "steps": j.steps is not None,
             "ties": getattr(j, "ties", None) is not None}
    return {k for k, v in given.items() if v}


def check(task: str, j, scale: int, aspects: list[str], responses: list[str]) -> None:
    """422 with a sentence unless judgement `j` (a queue.JudgementIn) fits the task."""
    extra = _sent(j) - FIELDS[task]
    if extra:
        raise APIError(422, f"a {task} judgement takes only {sorted(FIELDS[task])}, "
                            f"not {sorted(extra)}")
    if task == "pairwise":
        if j.tie == (j.choice is not None):
            raise APIError(422, 'send "choice": 0 or 1, or "tie": true (not both)')
        if j.tie and j.strength is not None:
            raise APIError(422, "a tie has no strength")
        if j.strength is not None and not 1 <= j.strength <= scale:
            raise APIError(422, f'"strength" must be 1..{scale}, got {j.strength}')
    elif task == "likert":
        if not j.ratings or set(j.ratings) != set(aspects):
            raise APIError(422, f'"ratings" needs exactly the aspects {aspects}')
        bad = {a: v for a, v in j.ratings.items() if not 1 <= v <= scale}
        if bad:
            raise APIError(422, f"ratings must be 1..{scale}, got {bad}")
    elif task == "ranking":
        # all responses or the top k, best first; "ties": groups of consecutive tied entries
        try:
            check_ranking(j.ranking, j.ties, len(responses))
        except ValueError as e:
            raise APIError(422, f'"ranking" / "ties": {e}') from None
    elif task in ("edit", "critique"):
        if j.text is None or not j.text.strip():
            what = "the corrected response" if task == "edit" else "your critique"
            raise APIError(422, f'"text" must hold {what}')
    elif task == "steps":
        n = len(steps_of(responses[0]))
        if j.steps is None or len(j.steps) != n:
            raise APIError(422, f'"steps" needs one true (correct) or false (incorrect) for '
                                f"each of the response's {n} steps")


def stored(task: str, j) -> dict:
    """The judgement's columns (choice, tie, strength, ratings, ranking, ties, text)."""
    ratings = ({STEP.format(i + 1): int(ok) for i, ok in enumerate(j.steps)}
               if task == "steps" else j.ratings)
    return {"choice": j.choice, "tie": j.tie, "strength": j.strength, "ratings": ratings,
            "ranking": j.ranking, "ties": j.ties, "text": j.text}


def record_fields(task: str, j) -> dict:
    """The task-specific fields of the canonical record for stored judgement `j`."""
    if task == "pairwise":
        return {"type": "pairwise", "choice": j.choice, "tie": j.tie, "strength": j.strength}
    if task in ("likert", "steps"):
        return {"type": "rating", "ratings": {k: float(v) for k, v in j.ratings.items()}}
    if task == "ranking":
        return {"type": "ranking", "ranking": list(j.ranking),
                **({"ties": j.ties} if j.ties else {})}
    if task == "edit":
        return {"type": "edit", "edit": j.text}
    return {"type": "critique", "critique": j.text}


def scale_note(task: str, scale: int) -> str:
    """What the numbers of an exported record mean (its provenance.scale)."""
    return {
        "pairwise": f"strength 1..{scale}: 1 slightly better ... {scale} much better",
        "likert": f"ratings 1..{scale} per aspect: 1 worst, {scale} best",
        "ranking": "ranking: response indices, best first (all, or the top k: the rest "
                   "unranked, below them); ties: groups of tied responses",
        "edit": "edit: the annotator's corrected response",
        "critique": "critique: the annotator's free-text critique of the response",
        "steps": "steps: ratings per step (a non-empty line of the response): "
                 "1 correct, 0 incorrect",
    }[task]
