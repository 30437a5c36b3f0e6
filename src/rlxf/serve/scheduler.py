"""The batch scheduler behind `rlxf serve`: one worker thread owns the model and runs one batch at
a time; requests that arrive while a batch runs, or within `window_s` of the first request of an
idle server, go into the next batch together, up to `max_batch` choices. `max_batch=1` is the
one-generation-at-a-time server rlxf had before batching (the benchmark's baseline)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Callable

from .decode import Choice


class Scheduler:
    def __init__(self, run_batch: Callable[[list[Choice]], None], *, max_batch: int = 8,
                 window_s: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch}: must be at least 1")
        self.run_batch, self.max_batch, self.window_s = run_batch, max_batch, window_s
        self.batch_sizes: list[int] = []  # choices per batch run, in order (for tests and logs)
        self._incoming: queue.Queue[list[Choice]] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, daemon=True, name="rlxf-serve-batch")
        self._worker.start()

    def submit(self, choices: list[Choice]) -> None:
        """One request's choices; they always run in the same batch (a request with more than
        max_batch choices runs alone)."""
        self._incoming.put(choices)

    def _serve(self) -> None:
        waiting: deque[list[Choice]] = deque()
        while True:
            batch = self._collect(waiting)
            self.batch_sizes.append(len(batch))
            try:
                self.run_batch(batch)
            except BaseException as e:  # surfaces in each request, not in a dead thread
                for choice in batch:
                    choice.tokens.put(e)

    def _collect(self, waiting: deque) -> list[Choice]:
        """The next batch: what is waiting, then what arrives within the window, in arrival
        order; a request that would overflow the batch waits for the next one."""
        if not waiting:
            waiting.append(self._incoming.get())
            deadline = time.monotonic() + self.window_s
        else:
            deadline = time.monotonic()  # a batch just ran: take what queued meanwhile, no wait
        batch = waiting.popleft()
        while len(batch) < self.max_batch:
            if not waiting:
                try:
                    waiting.append(self._incoming.get(timeout=max(0.0, deadline - time.monotonic()))
                                   if time.monotonic() < deadline else self._incoming.get_nowait())
                except queue.Empty:
                    break
            if len(batch) + len(waiting[0]) > self.max_batch:
                break
            batch = batch + waiting.popleft()
        return batch
