"""`rlxf run --seeds N` (and `rlxf sweep --seeds N`): the experiment once per training seed,
seed, seed+1, ..., seed+N-1, each a whole run of its own, in parallel local processes.

The first seed runs in RUN itself, so RUN keeps the layout of a one-seed run (and a one-seed
run resumed with --seeds N keeps what it has); each other seed K runs in RUN/seeds/seed=K/, a
complete run directory. Nothing is shared between seeds: every stage's fingerprint includes the
seed (the world's knowledge base and held-out split are drawn from it too), so sharing a stage
would change what the seeds mean. RUN/seeds/seeds.json lists the members; the report of RUN
pools them (rlxf.audit.pooled, rlxf.audit.uncertainty). Each member is `rlxf run` (or `rlxf
sweep`) in a process of its own, its output in RUN/seeds/logs/seed=K.log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .rundir import atomic_write_json

SEEDS_DIR = "seeds"
SEEDS_FILE = "seeds.json"
LOGS_DIR = "logs"
POLL_S = 1.0


@dataclass
class Member:
    seed: int
    dir: Path
    log: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    wall_s: float | None = None
    rc: int | None = None


def plan(out: Path, seed: int, n: int) -> list[Member]:
    """One member per seed; the first is RUN itself."""
    logs = out / SEEDS_DIR / LOGS_DIR
    return [Member(s, out if s == seed else out / SEEDS_DIR / f"seed={s}",
                   logs / f"seed={s}.log") for s in range(seed, seed + n)]


def as_member(config, text: str, seed: int | None):
    """(config, config text) of one member: its seed instead of the config's, one seed; the
    text that RUN/config.toml keeps says so when it differs from the config's own."""
    if seed is None:
        return config, text
    header = (f"# rlxf run --seeds member: seed = {seed} (overrides the config below)\n"
              if seed != config.seed else "")
    return config.model_copy(update={"seed": seed, "seeds": 1}), header + text


def default_jobs(n: int) -> tuple[int, int]:
    """(processes at once, torch threads each): every seed at once, the cores shared out; a
    tiny model gains little from a second thread, so more processes use the cores better."""
    cores = os.cpu_count() or 1
    return n, max(1, cores // n)


def _command(command: str, config: Path, m: Member, threads: int) -> list[str]:
    return [sys.executable, "-m", "rlxf", command, str(config), "--out", str(m.dir),
            "--seed", str(m.seed), "--threads", str(threads), "--no-report"]


def run_seeds(command: str, config: Path, out: Path, seed: int, n: int, jobs: int,
              threads: int, log: Callable[[str], None],
              on_poll: Callable[[list[Member]], None] = lambda ms: None) -> list[Member]:
    """Run every member (at most `jobs` at once), polling each second; a failed member does
    not stop the others (their work is kept) but fails the whole at the end."""
    members = plan(out, seed, n)
    (out / SEEDS_DIR / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SEEDS_DIR / SEEDS_FILE, {
        "command": command, "seeds": [m.seed for m in members],
        "dirs": [os.path.relpath(m.dir, out) for m in members]})
    waiting, running = list(members), []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    while waiting or running:
        while waiting and len(running) < jobs:
            m = waiting.pop(0)
            m.dir.mkdir(parents=True, exist_ok=True)
            with open(m.log, "w") as fh:
                m.proc = subprocess.Popen(_command(command, config, m, threads), stdout=fh,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env)
            m.started = time.perf_counter()
            running.append(m)
            log(f"seed {m.seed}: started ({m.dir}, log {m.log})")
        time.sleep(POLL_S)
        on_poll(members)
        for m in [m for m in running if m.proc.poll() is not None]:
            running.remove(m)
            m.rc, m.wall_s = m.proc.returncode, time.perf_counter() - m.started
            if m.rc == 0:
                log(f"seed {m.seed}: done in {m.wall_s:.1f} s")
            else:
                tail = m.log.read_text(errors="replace").strip().splitlines()[-15:]
                log(f"[red]seed {m.seed}: failed (exit {m.rc}); the end of {m.log}:[/red]\n"
                    + "\n".join(tail))
    return members


def stages_done(m: Member) -> int:
    """Completed stages of a member so far (lines of its ledger)."""
    ledger = m.dir / "ledger.jsonl"
    try:
        return sum(1 for line in ledger.read_text().splitlines() if line.strip())
    except FileNotFoundError:
        return 0
