"""What a request without a session may cost: sign-in (login, invite acceptance) runs argon2,
64 MiB and tens of milliseconds of CPU per hash, so an unauthenticated flood could exhaust the
server's memory and starve signed-in users.

- Attempts are limited per account and per client address (token buckets, per worker): the
  41st attempt on one account within its burst is refused with 429 before anything is hashed,
  and only after a pause (`TARPIT_S`, an asyncio sleep that costs nothing): a flood from a fixed
  number of connections then slows to a few requests per second, instead of keeping the event
  loop busy answering 429s.
- At most `max_hashes` hashes run at once, on their own threads at the lowest CPU priority
  (argon2's own worker threads inherit it: its default parallelism of 4 would otherwise take
  every core from signed-in users); the rest wait on an asyncio semaphore, holding no thread of
  the pool that serves everyone else, and beyond `max_waiting` waiters a request is refused
  with 429 at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import Request

from .errors import APIError
from .ratelimit import RateLimiter

ACCOUNT_BURST, ACCOUNT_PER_S = 40, 1 / 600  # then one attempt per 10 minutes
ADDRESS_BURST, ADDRESS_PER_S = 100, 1.0  # an office behind one NAT signs in at nine
# one hash at a time leaves the other core(s) to signed-in users; ~10 sign-ins a second
MAX_HASHES, MAX_WAITING = 1, 64
TARPIT_S = 3.0


def client_address(request: Request) -> str:
    """The peer's address as the socket reports it: X-Forwarded-For is not trusted (anyone can
    send it); behind a reverse proxy, configure it to limit sign-ins itself."""
    return request.client.host if request.client else "unknown"


class SignInGuard:
    def __init__(self, account_burst: int = ACCOUNT_BURST, account_per_s: float = ACCOUNT_PER_S,
                 address_burst: int = ADDRESS_BURST, address_per_s: float = ADDRESS_PER_S,
                 max_hashes: int = MAX_HASHES, max_waiting: int = MAX_WAITING,
                 tarpit_s: float = TARPIT_S, clock=time.monotonic):
        self.by_account = RateLimiter(account_per_s, account_burst, clock,
                                      what="sign-in attempts for this account")
        self.by_address = RateLimiter(address_per_s, address_burst, clock,
                                      what="sign-in attempts from your address")
        self.max_hashes, self.max_waiting, self.tarpit_s = max_hashes, max_waiting, tarpit_s
        self._slots: asyncio.Semaphore | None = None  # made in the serving event loop
        self._threads = ThreadPoolExecutor(max_hashes, thread_name_prefix="rlxf-hash",
                                           initializer=_lowest_priority)
        self.waiting = self.hashing = self.peak_hashing = 0

    async def admit(self, address: str | None, account: str | None) -> None:
        """Count one attempt from this address and on this account (None: not this time), or
        raise 429 after a pause."""
        try:
            if address is not None:
                self.by_address.check(address)
            if account is not None:
                self.by_account.check(account)
        except APIError:
            await asyncio.sleep(self.tarpit_s)
            raise

    @asynccontextmanager
    async def _slot(self):
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_hashes)
        if self.waiting >= self.max_waiting:
            raise APIError(429, "many sign-ins at once: wait a few seconds and try again",
                           retry_after_s=2.0)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.hashing += 1
        self.peak_hashing = max(self.peak_hashing, self.hashing)
        try:
            yield
        finally:
            self.hashing -= 1
            self._slots.release()

    async def hash(self, fn, *args):
        """Run one password hash or verification `fn(*args)` in the thread pool, once a slot
        is free."""
        async with self._slot():
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)


def _lowest_priority() -> None:
    """Nice 19 for this thread (Linux schedules threads one by one), and so for the threads
    argon2 starts from it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass  # not Linux: the cap alone still bounds memory
