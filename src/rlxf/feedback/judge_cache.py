"""The AI judge's answer cache: a request asked once is never paid for again, and a rerun gives
the same answers (even at temperature > 0), so AI feedback is reproducible.

One append-only JSONL file per cache directory, one line per answered request:
`{"key": sha256, "model": ..., "content": ..., "created": ISO 8601}`. The key is the sha256 of the
request body as sent (model, messages, temperature and any other sampling field), serialised as
canonical JSON. The endpoint address is not part of the key: the same model behind another port
or host is the same judge, and a local server's port changes from run to run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

CACHE_FILE = "judge_cache.jsonl"


def request_key(request: dict) -> str:
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JudgeCacheError(ValueError):
    pass


class JudgeCache:
    """Thread-safe get/put over `DIRECTORY/judge_cache.jsonl`. A torn last line (a crash while
    appending) is ignored; a bad line anywhere else is an error naming the file and line."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._needs_newline = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = entry
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                if i == len(lines):  # the last line, without its newline: a torn append
                    with open(self.path, "r+b") as fh:
                        fh.truncate(len(data) - len(line))
                    return
                raise JudgeCacheError(f"{self.path} line {i}: not a cache entry "
                                      '(expected {"key": ..., "content": ...})') from None
        self._needs_newline = bool(data) and not data.endswith(b"\n")

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, entry: dict) -> dict:
        entry = {"key": key, **entry}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                if self._needs_newline:
                    fh.write("\n")
                    self._needs_newline = False
                fh.write(line)
            self._entries[key] = entry
        return entry

    def __len__(self) -> int:
        return len(self._entries)
