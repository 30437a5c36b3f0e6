"""Projects from canonical feedback: a run directory's comparison queue
(RUN/feedback/feedback.jsonl) or any canonical JSONL file (docs/FEEDBACK.md).

Records sharing an `item_id` become one item. Gold items -- those with a known answer, mixed
into every annotator's queue to measure their accuracy -- come from the lab world's gold judge
when the source is a run directory with RUN/world/, or else from items whose source judgements
were unanimous.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..feedback.record import FeedbackRecord, RecordError, read_records
from .tasks import MAX_RANKED, SINGLE_RESPONSE, steps_of

GOLD_MARGIN = 0.2  # gold-judge utility gap for a gold item: a clear case, not a coin toss
MAX_ITEMS = 200_000


@dataclass
class ImportedItem:
    item_id: str
    prompt: str
    responses: list[str]
    context: list[dict] = field(default_factory=list)
    prompt_id: str | None = None
    gold: dict | None = None
    provenance: dict = field(default_factory=dict)


@dataclass
class Source:
    records: list[FeedbackRecord]
    description: dict
    world_dir: Path | None = None


def resolve_under(path: str, root: Path) -> Path:
    """`path` (absolute, or relative to `root`) if it lies inside `root`, else ValueError."""
    root = root.resolve()
    p = (root / path).resolve()
    if p != root and root not in p.parents:
        raise ValueError(f"{path}: outside the directory this server may read ({root})")
    return p


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None: a NUL byte (PostgreSQL text refuses it) or a
    lone UTF-16 surrogate (from an escape such as "\\ud800" without its pair: not valid
    Unicode, so it fails as soon as it is encoded)."""
    if "\x00" in text:
        return "a NUL character cannot be stored"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return ("a lone UTF-16 surrogate (an escape like \\ud800 without its pair) is not text "
                "that can be stored")
    return None


def unstorable(obj) -> str | None:
    """Why a parsed JSON value holds text that cannot be stored (every key and string,
    nested), naming the field; or None."""
    stack = [("", obj)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{where}.{k}" if where else str(k), x) for k, x in v.items())
            stack.extend((f"{where} (a key)", k) for k in v)
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
        elif isinstance(v, str) and (problem := text_problem(v)):
            return f'"{where}": {problem}'
    return None


def read_source(path: Path) -> Source:
    """A run directory (its feedback/feedback.jsonl, gold from its world/) or a JSONL file."""
    if path.is_dir():
        queue = path / "feedback" / "feedback.jsonl"
        if not queue.exists():
            raise ValueError(f"{path}: a run directory needs feedback/feedback.jsonl "
                             "(run `rlxf run CONFIG --out RUN --until feedback` first)")
        world = path / "world"
        has_world = (world / "world.json").exists() and (world / "prompts.jsonl").exists()
        return Source(read_records(queue, refuse=unstorable),
                      {"run_dir": str(path), "file": str(queue)}, world if has_world else None)
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    return Source(read_records(path, refuse=unstorable), {"file": str(path)})


def records_from_text(text: str, name: str) -> list[FeedbackRecord]:
    """Parse uploaded JSONL with the same checks (and messages) as a file on disk."""
    for i, line in enumerate(text.splitlines(), 1):  # raw text a JSON request body carried
        problem = text_problem(line)
        if problem:
            raise RecordError(f"{name} line {i}: {problem}")
    fd, tmp = tempfile.mkstemp(suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return read_records(tmp, refuse=unstorable)
    except RecordError as e:
        raise RecordError(str(e).replace(tmp, name)) from None
    finally:
        os.unlink(tmp)


def _label(r: FeedbackRecord) -> str | None:
    if r.type != "pairwise":
        return None
    return "tie" if r.tie else "ab"[r.choice]


def _check_text(r: FeedbackRecord) -> None:
    texts = [r.item_id, r.prompt, r.prompt_id or "", *r.responses, *(m.content for m in r.context)]
    if any("\x00" in t for t in texts) or len(r.item_id) > 180 or len(r.prompt_id or "") > 200:
        raise ValueError(f"record {r.id!r}: NUL characters, or an item_id over 180 / prompt_id "
                         "over 200 characters, cannot be stored")


def _ranking_items(records: list[FeedbackRecord], counts: dict) -> list[ImportedItem]:
    """One item per prompt (its prompt_id, else its text and context) with the distinct
    responses of all its records, up to MAX_RANKED: a pairwise queue with several pairs per
    prompt becomes k-wise comparisons. The item id is the first record's item_id."""
    grouped: dict[tuple, list[FeedbackRecord]] = {}
    for r in records:
        key = (r.prompt_id,) if r.prompt_id else (r.prompt, tuple(m.content for m in r.context))
        grouped.setdefault(key, []).append(r)
    items = []
    for rs in grouped.values():
        first = rs[0]
        responses = list(dict.fromkeys(t for r in rs for t in r.responses))[:MAX_RANKED]
        if len(responses) < 2:
            _skip(counts, "fewer than two responses for the prompt", len(rs))
            continue
        prov = {k: v for k, v in first.provenance.items() if k in ("dataset", "file", "line")}
        items.append(ImportedItem(first.item_id, first.prompt, responses,
                                  [m.model_dump() for m in first.context], first.prompt_id,
                                  provenance={**prov, "from_items": sorted(
                                      {r.item_id for r in rs})[:50]}))
        counts["merged"] += len(rs) - 1
    return items


def _skip(counts: dict, why: str, n: int = 1) -> None:
    counts["skipped"][why] = counts["skipped"].get(why, 0) + n


def _same_text(a: FeedbackRecord, b: FeedbackRecord) -> bool:
    return (a.prompt, a.responses, a.context) == (b.prompt, b.responses, b.context)


def build_items(records: list[FeedbackRecord], task_type: str) -> tuple[list[ImportedItem], dict]:
    """One item per item_id (first-seen order). Pairwise projects need two responses; ranking
    projects gather a prompt's responses (_ranking_items); Likert, edit, critique and steps
    projects show each distinct response on its own (item ids ITEM#0, ITEM#1).

    Also returns what happened to the records, for the admin: {"records", "items", "merged"
    (records that joined an item an earlier record made: the same item_id, or for ranking the
    same prompt), "merged_with_other_text" (of those, records whose prompt or responses differ
    from the item's: their text is not used), "skipped": {reason: records}}."""
    counts = {"records": len(records), "items": 0, "merged": 0, "merged_with_other_text": 0,
              "skipped": {}}
    grouped: dict[str, list[FeedbackRecord]] = {}
    for r in records:
        _check_text(r)
        grouped.setdefault(r.item_id, []).append(r)
    items = _ranking_items(records, counts) if task_type == "ranking" else []
    for item_id, rs in grouped.items():
        if task_type == "pairwise":
            usable = [r for r in rs if len(r.responses) == 2]
            if len(usable) < len(rs):
                _skip(counts, "not two responses (pairwise)", len(rs) - len(usable))
            rs = usable
        if not rs or task_type == "ranking":
            continue
        first = rs[0]
        counts["merged"] += len(rs) - 1
        counts["merged_with_other_text"] += sum(not _same_text(first, r) for r in rs[1:])
        prov = {k: v for k, v in first.provenance.items() if k in ("dataset", "file", "line")}
        labels = [x for x in map(_label, rs) if x is not None]
        if task_type == "pairwise":
            items.append(ImportedItem(item_id, first.prompt, list(first.responses),
                                      [m.model_dump() for m in first.context], first.prompt_id,
                                      provenance={**prov, "source_labels": labels}))
        elif task_type in SINGLE_RESPONSE:
            for i, text in enumerate(dict.fromkeys(first.responses)):
                if task_type == "steps" and not steps_of(text):
                    continue
                items.append(ImportedItem(f"{item_id}#{i}", first.prompt, [text],
                                          [m.model_dump() for m in first.context],
                                          first.prompt_id, provenance=prov))
    counts["items"] = len(items)
    if not items:
        need = {"pairwise": "two responses", "ranking": "two or more responses per prompt"}
        raise ValueError(f"no usable items: a {task_type} project needs records with "
                         f"{need.get(task_type, 'non-empty responses')}")
    if len(items) > MAX_ITEMS:
        raise ValueError(f"{len(items)} items: at most {MAX_ITEMS} per project")
    return items, counts


def world_gold(items: list[ImportedItem], world_dir: Path) -> dict[str, dict]:
    """Answers of the lab world's gold judge for the pairs it can score with a clear margin."""
    from ..world.judge import score
    from ..world.kb import KnowledgeBase
    from ..world.prompts import Prompt

    meta = json.loads((world_dir / "world.json").read_text())
    kb, weights = KnowledgeBase.from_json(meta["kb"]), meta["weights"]
    prompts = {}
    for line in (world_dir / "prompts.jsonl").read_text().splitlines():
        if line.strip():
            p = Prompt.from_json(json.loads(line)["prompt"])
            prompts[p.id] = p
    answers = {}
    for it in items:
        # a backdoor variant "ID+trigger" is judged like its base prompt: the judge ignores it
        p = prompts.get(it.prompt_id or "") or prompts.get((it.prompt_id or "").partition("+")[0])
        if p is None or len(it.responses) != 2:
            continue
        ua, ub = (score(p, text, kb).utility(weights) for text in it.responses)
        if abs(ua - ub) >= GOLD_MARGIN:
            answers[it.item_id] = {"choice": 0 if ua > ub else 1, "by": "world gold judge"}
    return answers


def unanimous_gold(items: list[ImportedItem]) -> dict[str, dict]:
    """Items whose two or more source judgements all preferred the same response."""
    answers = {}
    for it in items:
        labels = it.provenance.get("source_labels", [])
        if len(labels) >= 2 and len(set(labels)) == 1 and labels[0] != "tie":
            answers[it.item_id] = {"choice": "ab".index(labels[0]), "by": "unanimous source"}
    return answers


def mark_gold(items: list[ImportedItem], source: Source, n_gold: int, seed: int = 0) -> str:
    """Mark up to `n_gold` items (spread at random, seeded) as gold; returns where answers came
    from."""
    if n_gold <= 0:
        return "none"
    if source.world_dir is not None:
        answers, how = world_gold(items, source.world_dir), "world gold judge"
    else:
        answers, how = unanimous_gold(items), "unanimous source judgements"
    chosen = set(random.Random(seed).sample(sorted(answers), min(n_gold, len(answers))))
    for it in items:
        if it.item_id in chosen:
            it.gold = answers[it.item_id]
    return how
