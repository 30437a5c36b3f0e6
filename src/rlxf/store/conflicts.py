"""Transient conflicts between concurrent transactions, and retrying the work that met one.

PostgreSQL aborts one side of a deadlock (SQLSTATE 40P01) and, at stricter isolation levels,
a transaction that cannot be serialised (40001); both are safe to run again from the start, so
the request retries instead of answering 500. SQLite writers are serialised by a lock in the
process (store/db.py) and never meet these.
"""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

RETRYABLE = {"40P01": "deadlock", "40001": "serialisation failure", "55P03": "lock not available"}
T = TypeVar("T")


def conflict_kind(exc: BaseException) -> str | None:
    """"deadlock" etc. if `exc` is a transient conflict worth retrying, else None."""
    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return RETRYABLE.get(code)


class StillConflicting(Exception):
    """Every attempt met a conflict (the API answers 503 with Retry-After)."""


def retry_conflicts(fn: Callable[[], T], attempts: int = 8, base_s: float = 0.01) -> T:
    """Run `fn` (one whole transaction) again after a transient conflict, with jittered
    exponential backoff; other errors pass through at once."""
    for attempt in range(attempts):
        try:
            return fn()
        except DBAPIError as e:
            kind = conflict_kind(e)
            if kind is None:
                raise
            if attempt == attempts - 1:
                raise StillConflicting(f"{kind} on every one of {attempts} attempts") from e
            time.sleep(base_s * 2 ** attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")
