"""Token buckets in memory: per-account rate limit of label submissions (and, in
server/signin.py, of sign-in attempts per account and per client address).

A person labels at most a few items per second (reading takes longer than that); a runaway
script or a stuck key submits far more. Over the limit the API answers 429 with a sentence and
Retry-After. The buckets live in the server process: with several workers each has its own,
so the effective limit is per worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from .errors import APIError


class RateLimiter:
    """`rate` events per second on average, bursts of up to `burst`; rate 0: no limit.
    `what`: the events, for the 429's sentence."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic, what: str = "labels"):
        self.rate, self.burst, self.clock, self.what = rate, burst, clock, what
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()  # PostgreSQL routes run in the thread pool

    def check(self, account: Hashable) -> None:
        """Take one token for `account` (any key), or raise a 429 saying when to come back."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(account, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[account] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise APIError(429, f"too many {self.what} in a short time (at most "
                                    f"{self.rate:g} per second, {self.burst} in a burst): wait "
                                    f"{wait:.1f} s and send it again", retry_after_s=wait)
            self._buckets[account] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget accounts whose bucket refilled
                full = [k for k, (t, a) in self._buckets.items()
                        if t + (now - a) * self.rate >= self.burst]
                for k in full:
                    del self._buckets[k]
