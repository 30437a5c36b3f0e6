"""The tiny end-to-end run (tests/configs/tiny.toml) through the real CLI, shared by the test
modules that need one: conftest.py builds it once per session (fixture `tiny_run`), and a test
that would change it works on its own copy (`copy_run`), where `rlxf run` skips every stage
whose config and inputs are unchanged and reruns only the stages downstream of a change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

TINY = Path(__file__).parent / "configs" / "tiny.toml"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
# The tiny models are far too small to gain from a second torch thread; one thread per run
# saves CPU on a shared machine. Every run of the suite uses the same count, so runs compared
# number for number (a killed-and-resumed run against the shared one) use the same kernels.
THREADS = ("--threads", "1")


def rlxf(*args, check=True) -> subprocess.CompletedProcess:
    """`rlxf ARGS` in a subprocess (`run` and `sweep` on one torch thread)."""
    args = [str(a) for a in args]
    if args[:1] in (["run"], ["sweep"]) and "--help" not in args:
        args += THREADS
    proc = subprocess.run([sys.executable, "-m", "rlxf.cli", *args], env=ENV,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlxf {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def numbers(path: Path):
    return json.loads(path.read_text())


def copy_run(run: Path, out: Path, drop: tuple[str, ...] = ()) -> Path:
    """A private copy of `run` at `out`, without the stage directories in `drop` (so the next
    `rlxf run` on it recomputes those)."""
    shutil.copytree(run, out, symlinks=True)
    for stage in drop:
        shutil.rmtree(out / stage)
    return out


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under `root` with its content hash and modification time: what a test that
    wrote into a shared run would change."""
    from rlxf.rundir import sha256_file
    return {str(p.relative_to(root)): (sha256_file(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}
