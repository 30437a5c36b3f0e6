"""`rlxf run --seeds N` (and `rlxf sweep --seeds N`): the experiment once per training seed,
seed, seed+1, ..., seed+N-1, each a whole run of its own, in parallel: local processes, or Ray
tasks on a cluster (`--ray ADDRESS`; each task runs the same command on the node Ray picks).

The first seed runs in RUN itself, so RUN keeps the layout of a one-seed run (and a one-seed
run resumed with --seeds N keeps what it has); each other seed K runs in RUN/seeds/seed=K/, a
complete run directory. Nothing is shared between seeds: every stage's fingerprint includes the
seed (the world's knowledge base and held-out split are drawn from it too), so sharing a stage
would change what the seeds mean. RUN/seeds/seeds.json lists the members; the report of RUN
pools them (rlxf.audit.pooled, rlxf.audit.uncertainty). Each member is `rlxf run` (or `rlxf
sweep`) in a process of its own, its output in RUN/seeds/logs/seed=K.log. Under Ray, RUN must be
on a filesystem every node sees (the members write there), and rlxf installed on every node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .ray_connect import connect
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
    proc: object = None  # what the launcher returned: a Popen, or a Ray ObjectRef
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


def _arguments(command: str, config: Path, m: Member, threads: int,
               reuse: Path | None = None) -> list[str]:
    """`python -m rlxf ...` for one member, without the interpreter (a Ray node uses its own);
    `reuse`: the member of another --seeds run with the same seed, whose stages it may copy."""
    return ["-m", "rlxf", command, str(config), "--out", str(m.dir),
            "--seed", str(m.seed), "--threads", str(threads), "--no-report",
            *(["--reuse", str(reuse)] if reuse is not None else [])]


def reuse_dirs(reuse: Path | None, seed: int, n: int) -> dict[int, Path]:
    """Seed -> the run directory of that seed in the --seeds run `reuse` (laid out by `plan`)."""
    if reuse is None:
        return {}
    return {m.seed: m.dir for m in plan(Path(reuse).resolve(), seed, n) if m.dir.is_dir()}


def _start(arguments: list[str], log: Path | str, threads: int) -> subprocess.Popen:
    """`arguments` under this machine's Python, output to `log`, `threads` torch threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, *arguments], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def run_logged(arguments: list[str], log: str, threads: int) -> int:
    """One member to its end (what a Ray task runs on its node); its exit code."""
    return _start(arguments, log, threads).wait()


class LocalProcesses:
    """Every member a child process of this one."""

    where = "local processes"

    def start(self, arguments: list[str], log: Path, threads: int) -> subprocess.Popen:
        return _start(arguments, log, threads)

    def poll(self, proc: subprocess.Popen) -> int | None:
        return proc.poll()

    def close(self) -> None:
        pass


class RayTasks:
    """Every member a Ray task asking for `threads` CPUs, which runs `run_logged` on the node
    Ray picks. `address` is ray.init's: "auto" (the cluster this machine is part of), "host:port"
    (what `ray start --head` prints), "ray://host:port" (Ray Client), or "local" (start a
    one-machine cluster here); a cluster with token authentication: rlxf.ray_connect."""

    def __init__(self, address: str):
        try:
            import ray
        except ImportError:
            raise RuntimeError("--ray needs Ray: pip install 'rlxf[ray]'") from None
        self.ray = ray
        connect(ray, address)
        self.where = f"Ray ({address}, {ray.cluster_resources().get('CPU', 0):.0f} CPUs)"
        self.remote = ray.remote(run_logged)

    def start(self, arguments: list[str], log: Path, threads: int):
        return self.remote.options(num_cpus=threads).remote(arguments, str(log), threads)

    def poll(self, ref) -> int | None:
        done, _ = self.ray.wait([ref], timeout=0)
        if not done:
            return None
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError:  # the task or its node died: the member failed
            return -1

    def close(self) -> None:
        self.ray.shutdown()


def run_seeds(command: str, config: Path, out: Path, seed: int, n: int, jobs: int,
              threads: int, log: Callable[[str], None],
              on_poll: Callable[[list[Member]], None] = lambda ms: None,
              launcher=None, reuse: Path | None = None) -> list[Member]:
    """Run every member (at most `jobs` at once) through `launcher` (default: local
    processes), polling each second; a failed member does not stop the others (their work is
    kept) but fails the whole at the end. Paths are made absolute: a Ray node has its own
    working directory."""
    launcher = launcher or LocalProcesses()
    config, out = Path(config).resolve(), Path(out).resolve()
    members = plan(out, seed, n)
    sources = reuse_dirs(reuse, seed, n)
    (out / SEEDS_DIR / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SEEDS_DIR / SEEDS_FILE, {
        "command": command, "seeds": [m.seed for m in members],
        "dirs": [os.path.relpath(m.dir, out) for m in members]})
    waiting, running = list(members), []
    log(f"{n} seeds on {launcher.where}, at most {jobs} at once, {threads} threads each")
    while waiting or running:
        while waiting and len(running) < jobs:
            m = waiting.pop(0)
            m.dir.mkdir(parents=True, exist_ok=True)
            m.proc = launcher.start(_arguments(command, config, m, threads, sources.get(m.seed)),
                                   m.log, threads)
            m.started = time.perf_counter()
            running.append(m)
            log(f"seed {m.seed}: started ({m.dir}, log {m.log})")
        time.sleep(POLL_S)
        on_poll(members)
        for m in list(running):
            rc = launcher.poll(m.proc)
            if rc is None:
                continue
            running.remove(m)
            m.rc, m.wall_s = rc, time.perf_counter() - m.started
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
