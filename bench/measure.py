"""Measuring instruments shared by both sides: step clock, peak memory, matmul peak, machine."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch


@dataclass
class StepClock:
    """Wall time at the end of every optimizer step; throughput is taken after `warmup` steps,
    so one-time costs (allocator growth, first-call dispatch, TRL's dataset preparation) stay out."""
    warmup: int
    ends: list[float] = field(default_factory=list)
    cpu_ends: list[float] = field(default_factory=list)
    first_loss: float | None = None
    completion_lengths: list[int] = field(default_factory=list)  # sampled (GRPO), all steps

    def tick(self) -> None:
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())

    def seconds_per_step(self, cpu: bool = False) -> float:
        """Wall seconds per step, or with `cpu` the process's CPU seconds per step: on a machine
        shared with other jobs, CPU time is what the work itself cost (time spent waiting for
        a core is not in it), so with one thread it is the steadier measure."""
        ends = self.cpu_ends if cpu else self.ends
        if len(ends) <= self.warmup + 1:
            raise ValueError(f"need more than {self.warmup + 1} steps, got {len(ends)}")
        return (ends[-1] - ends[self.warmup]) / (len(ends) - 1 - self.warmup)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms. CPU tensors have no
    allocator statistics of their own; freeing and trimming the heap first makes the baseline
    fair to whichever side runs second."""

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def matmul_peak_flops(n: int = 1024, repeats: int = 20, cpu: bool = False) -> float:
    """Best FLOP/s of an n x n float32 matmul at the current thread count (2·n³ per product),
    per wall second or, with `cpu`, per process CPU second (see StepClock.seconds_per_step)."""
    clock = time.process_time if cpu else time.perf_counter
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        a @ b
        best = min(best, clock() - t)
    return 2 * n**3 / best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    load = os.getloadavg()
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "loadavg_at_start": [round(x, 2) for x in load]}


def rlxf_commit() -> str | None:
    """The commit of the rlxf source the benchmark ran (the installed version number does not
    change between commits); "+dirty" if the checkout had uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def versions() -> dict:
    return {**{pkg: version(pkg) for pkg in ("rlxf", "torch", "transformers", "trl",
                                             "accelerate", "datasets")},
            "rlxf_commit": rlxf_commit()}
