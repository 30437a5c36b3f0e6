"""Reading dataset files with `datasets` (JSON Lines, gzipped JSON Lines, Parquet), each row
with its line, and writing records atomically.

`datasets`' JSON loader reports a syntax error without its line ("JSON parse error: ... in
row 1" counts rows within a block), so when it fails the file is scanned line by line to name
the bad line; with skip_invalid the bad lines are left out and the rest is loaded again.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..feedback.record import RecordError
from ..rundir import write_jsonl

JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)


@dataclass
class Rows:
    """The rows of one file: (number, row) pairs, where the number is the line of a JSON
    Lines file or the row of a Parquet file (`unit` says which), counted from 1."""
    unit: str
    rows: Iterator[tuple[int, dict]]
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # skipped: (line, why)

    def __iter__(self):
        return iter(self.rows)


@contextmanager
def open_rows(path: Path, skip_invalid: bool = False) -> Iterator[Rows]:
    """The rows of `path`, read with `datasets` into a temporary cache (removed afterwards).
    A line that is not a JSON object raises RecordError naming the file and line, or with
    skip_invalid is left out and described in `Rows.unreadable`."""
    name = path.name.lower()
    if not path.is_file():
        raise RecordError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    if not name.endswith(JSON_SUFFIXES + PARQUET_SUFFIXES):
        raise RecordError(f"{path}: unknown file type (expected "
                          f"{', '.join(JSON_SUFFIXES + PARQUET_SUFFIXES)})")
    with tempfile.TemporaryDirectory(prefix="rlxf-data-") as cache:
        if name.endswith(PARQUET_SUFFIXES):
            try:
                ds = _load("parquet", path, cache)
            except _LoadError as e:
                raise RecordError(f"{path}: not a readable Parquet file ({e})") from None
            yield Rows("row", ((i, row) for i, row in enumerate(ds, 1)))
        elif _starts_with(path, b"["):  # one JSON array, not JSON Lines: no lines to count
            try:
                ds = _load("json", path, cache)
            except _LoadError as e:
                raise RecordError(_array_error(path) or f"{path}: not readable ({e})") from None
            yield Rows("record", ((i, row) for i, row in enumerate(ds, 1)))
        else:
            yield _json_lines(path, cache, skip_invalid)


def write_records(path: Path, records: list[dict]) -> int:
    """Canonical records as JSONL, atomically: `path` appears complete or not at all."""
    return write_jsonl(path, records)


def _json_lines(path: Path, cache: str, skip_invalid: bool) -> Rows:
    lines, bad = _scan(path, parse=False)
    if not lines:
        raise RecordError(f"{path}: no rows")
    try:
        ds = _load("json", path, cache)
    except _LoadError as first:
        lines, bad = _scan(path, parse=True)
        if not bad:  # every line is a JSON object, yet datasets failed: report its words
            raise RecordError(f"{path}: not readable as JSON Lines ({first})") from None
        if not skip_invalid:
            raise RecordError(bad[0][1]) from None
        if not lines:
            return Rows("line", iter([]), bad)
        clean = Path(cache) / "valid-lines.jsonl"
        keep = set(lines)
        with _open(path) as fh, open(clean, "wb") as out:
            out.writelines(raw for n, raw in enumerate(fh, 1) if n in keep)
        try:
            ds = _load("json", clean, cache)
        except _LoadError as e:
            raise RecordError(f"{path}: not readable as JSON Lines ({e})") from None
    if len(ds) != len(lines):
        raise RecordError(f"{path}: datasets read {len(ds)} rows from {len(lines)} lines")
    return Rows("line", zip(lines, ds), bad)


def _scan(path: Path, parse: bool) -> tuple[list[int], list[tuple[int, str]]]:
    """Numbers of the non-blank lines (the rows datasets reads) and, with parse, the lines
    that are not JSON objects, described (those are left out of the numbers)."""
    good, bad = [], []
    try:
        with _open(path) as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                if parse:
                    try:
                        value = json.loads(raw)
                    except json.JSONDecodeError as e:
                        bad.append((n, f"{path} line {n}: not valid JSON ({e.msg} at column "
                                       f"{e.colno})"))
                        continue
                    except ValueError:
                        bad.append((n, f"{path} line {n}: not valid JSON (not UTF-8 text)"))
                        continue
                    if not isinstance(value, dict):
                        bad.append((n, f"{path} line {n}: expected a JSON object, got "
                                       f"{type(value).__name__}"))
                        continue
                good.append(n)
    except (OSError, EOFError) as e:  # e.g. a truncated or not-gzip .gz
        raise RecordError(f"{path}: cannot be read ({e})") from None
    return good, bad


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _starts_with(path: Path, prefix: bytes) -> bool:
    try:
        with _open(path) as fh:
            return fh.read(4096).lstrip().startswith(prefix)
    except (OSError, EOFError) as e:
        raise RecordError(f"{path}: cannot be read ({e})") from None


def _array_error(path: Path) -> str | None:
    try:
        with _open(path) as fh:
            json.load(fh)
    except json.JSONDecodeError as e:
        return f"{path} line {e.lineno}: not valid JSON ({e.msg} at column {e.colno})"
    except ValueError:
        return f"{path}: not valid JSON (not UTF-8 text)"
    return None


class _LoadError(Exception):
    pass


def _load(kind: str, path: Path, cache: str):
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # we report failures ourselves
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=cache)
    except Exception as e:  # datasets wraps arrow's errors in several types
        cause = e.__cause__ or e
        raise _LoadError(f"{type(cause).__name__}: {cause}") from None
