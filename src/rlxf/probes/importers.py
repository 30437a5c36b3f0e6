"""Importers for the public probe sets a user brings as files, in their published formats:
- XSTest (Röttger et al. 2024) `xstest_prompts.csv`: columns id, prompt, type, label
  ("safe" / "unsafe"), focus, note -> over-refusal prompts (the earlier
  `xstest_v2_prompts.csv` has no label column: there a "contrast_" type is unsafe);
- Anthropic's sycophancy evaluations (Sharma et al. 2023, `answer.jsonl`): one JSON object a
  line with "prompt" (messages) and "base" {"question", "correct_answer", "incorrect_answer",
  "answer" (aliases)} -> questions for the sycophancy probes (one per distinct question);
- RM-Bench (Liu et al. 2024) `total_dataset.json`: a JSON array (or JSON Lines) of {"id",
  "prompt", "chosen": [3 styles], "rejected": [3 styles], "domain"} -> RM-Bench items.
A bad row raises RecordError naming the file, the line (record, for a JSON array) and field."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from ..feedback.record import RecordError
from .answers import Question
from .over_refusal import RefusalPrompt
from .style_bias import RMBenchItem

XSTEST_COLUMNS = ("prompt", "type")


def _text(path: Path) -> str:
    if not path.is_file():
        raise RecordError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_xstest_csv(path: str | Path) -> list[RefusalPrompt]:
    path = Path(path)
    lines = _text(path).splitlines(keepends=True)
    reader = csv.DictReader(lines)
    missing = [c for c in XSTEST_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RecordError(f"{path} line 1: missing column(s) {', '.join(missing)} (XSTest's "
                          f"header is id,prompt,type,label,focus,note; found "
                          f"{','.join(reader.fieldnames or [])})")
    out, start = [], 2
    for row in reader:
        line, start = start, reader.line_num + 1  # a quoted prompt may span lines
        for col in XSTEST_COLUMNS:
            if not (row.get(col) or "").strip():
                raise RecordError(f'{path} line {line}: field "{col}" is empty')
        kind = row["type"].strip()
        label = ((row.get("label") or "") if "label" in reader.fieldnames else
                 "unsafe" if kind.startswith("contrast_") else "safe").strip().lower()
        if label not in ("safe", "unsafe"):
            shown = repr(row["label"]) if row.get("label") else "empty"
            raise RecordError(f'{path} line {line}: field "label" is {shown} '
                              '(expected "safe" or "unsafe")')
        ident = (row.get("id") or row.get("id_v2") or "").strip() or str(line)
        out.append(RefusalPrompt(f"xstest/{ident}", kind, row["prompt"].strip(),
                                 label == "safe"))
    if not out:
        raise RecordError(f"{path}: no rows")
    return out


def _json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """("line N" or "record N", object) for a JSON Lines file or a JSON array."""
    text = _text(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
        numbered = ((f"record {n}", row) for n, row in enumerate(rows, 1))
    else:
        numbered = []
        for n, raw in enumerate(text.splitlines(), 1):
            if raw.strip():
                try:
                    numbered.append((f"line {n}", json.loads(raw)))
                except json.JSONDecodeError as e:
                    raise RecordError(f"{path} line {n}: not valid JSON ({e.msg} at column "
                                      f"{e.colno})") from None
    any_row = False
    for where, row in numbered:
        if not isinstance(row, dict):
            raise RecordError(f"{path} {where}: expected a JSON object, got "
                              f"{type(row).__name__}")
        any_row = True
        yield where, row
    if not any_row:
        raise RecordError(f"{path}: no rows")


def _string(path: Path, where: str, obj: dict, field: str, name: str | None = None) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise RecordError(f'{path} {where}: field "{name or field}" must be a non-empty '
                          f"string (got {got})")
    return value.strip()


def read_sycophancy_jsonl(path: str | Path) -> list[Question]:
    path = Path(path)
    out: dict[str, Question] = {}
    for where, row in _json_records(path):
        base = row.get("base")
        if not isinstance(base, dict):
            raise RecordError(f'{path} {where}: field "base" must be an object with question, '
                              "correct_answer and incorrect_answer")
        q = _string(path, where, base, "question", "base.question")
        right = _string(path, where, base, "correct_answer", "base.correct_answer")
        wrong = _string(path, where, base, "incorrect_answer", "base.incorrect_answer")
        extra = base.get("answer", [])
        extra = [extra] if isinstance(extra, str) else extra
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise RecordError(f'{path} {where}: field "base.answer" must be a string or a list '
                              "of strings")
        if q not in out:
            correct = tuple(dict.fromkeys([right, *(a.strip() for a in extra if a.strip())]))
            out[q] = Question(f"sycophancy/{len(out)}", base.get("dataset") or "imported", q,
                              correct, (wrong,))
    return list(out.values())


def read_rm_bench(path: str | Path) -> list[RMBenchItem]:
    path = Path(path)
    out = []
    for where, row in _json_records(path):
        prompt = _string(path, where, row, "prompt")
        styles = {}
        for field in ("chosen", "rejected"):
            v = row.get(field)
            if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                raise RecordError(f'{path} {where}: field "{field}" must be a non-empty list '
                                  "of strings (one response per style)")
            styles[field] = tuple(v)
        if len(styles["chosen"]) != len(styles["rejected"]):
            raise RecordError(f'{path} {where}: "chosen" has {len(styles["chosen"])} styles '
                              f'and "rejected" {len(styles["rejected"])}; expected the same')
        out.append(RMBenchItem(str(row.get("id", where)), prompt, styles["chosen"],
                               styles["rejected"], str(row.get("domain", ""))))
    return out
