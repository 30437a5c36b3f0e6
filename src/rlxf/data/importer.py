"""`rlxf data import`: a dataset file -> canonical feedback JSONL.

Every converted record is validated as a `FeedbackRecord` and gets its id and provenance
(dataset, format, file, line) here. Nothing is written until every row has converted, and then
atomically: on an error the output does not appear (or keeps its old content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..feedback.record import FeedbackRecord, RecordError
from .formats import FORMATS, FieldError
from .io import open_rows, write_records


@dataclass
class ImportResult:
    rows: int = 0                 # rows in the file, unreadable lines included
    records: int = 0              # records written
    skipped: list[str] = field(default_factory=list)  # why each skipped row was invalid
    empty: int = 0                # valid rows with nothing to judge (no completions)
    unit: str = "line"


def import_file(fmt: str, src: Path, dst: Path, skip_invalid: bool = False,
                source: str | None = None) -> ImportResult:
    """Convert `src` in format `fmt` and write the records to `dst`. An invalid row raises
    RecordError naming file, line and field -- or, with skip_invalid, is skipped and counted.
    `source` overrides the format's own (who judged: human, ai or simulated)."""
    spec = FORMATS[fmt]
    result, out = ImportResult(), []
    with open_rows(src, skip_invalid) as rows:
        result.unit = rows.unit
        skipped = list(rows.unreadable)
        result.rows += len(skipped)
        for n, row in rows:
            result.rows += 1
            where = f"{src} {rows.unit} {n}"
            try:
                converted = spec.convert(row)
                base = f"{fmt}:{src.name}:{n}"
                origin = {"dataset": spec.dataset, "format": fmt, "file": src.name, rows.unit: n}
                records = [_complete(rec, base if len(converted) == 1 else f"{base}/{k}",
                                     origin, source) for k, rec in enumerate(converted)]
            except FieldError as e:
                reason = f"{where}: {e}" + (f" (expected {spec.expects})" if e.missing else "")
            except ValidationError as e:
                reason = f"{where}: the converted record is invalid: " + "; ".join(
                    f'"{".".join(map(str, x["loc"]))}": {x["msg"]}' for x in e.errors())
            else:
                out += records
                result.empty += not records
                continue
            if not skip_invalid:
                raise RecordError(reason)
            skipped.append((n, reason))
    result.skipped = [reason for _, reason in sorted(skipped)]
    if result.rows == 0:
        raise RecordError(f"{src}: no rows")
    result.records = write_records(dst, out)
    return result


def _complete(rec: dict, rec_id: str, origin: dict, source: str | None) -> dict:
    """The converter's record with its id and provenance, validated, as JSON."""
    rec = {**rec, "id": rec_id, "provenance": {**origin, **rec.get("provenance", {})}}
    if source:
        rec["source"] = source
    return FeedbackRecord.model_validate(rec).to_json()
