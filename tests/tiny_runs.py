"""The tiny end-to-end run (tests/configs/tiny.toml) through the real CLI, shared by the test
modules that need one: conftest.py builds it once per session (fixture `tiny_run`), and a test
that would change it works on its own copy (`copy_run`), where `rlxf run` skips every stage
whose config and inputs are unchanged and reruns only the stages downstream of a change."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

TINY = Path(__file__).parent / "configs" / "tiny.toml"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
# The tiny models are far too small to gain from a second torch thread; one thread per run
# saves CPU on a shared machine. Every run of the suite uses the same count, so runs compared
# number for number (a killed-and-resumed run against the shared one) use the same kernels.
THREADS = ("--threads", "1")


class _Zygote:
    """tests/cli_zygote.py, started on first use: each command runs in a process forked from
    one that has already imported the CLI's dependencies."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def run(self, args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
        with self.started(args, cwd, pid=False) as finish:
            return finish()

    @contextmanager
    def started(self, args: list[str], cwd: Path | None, pid: bool):
        """Send the command; yield `finish` (waits for it, returns its CompletedProcess), with
        `finish.pid` the child's pid if `pid`. Leaving the block kills a child still running,
        so the zygote is free for the next command whatever the test did."""
        with self.lock, tempfile.TemporaryDirectory(prefix="rlxf-cli-") as tmp:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(
                    [sys.executable, str(Path(__file__).parent / "cli_zygote.py")], env=ENV,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                atexit.register(self.close)
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            self.proc.stdin.write(json.dumps({"args": args, "stdout": str(out), "stderr": str(err),
                                              "cwd": cwd and str(cwd), "timeout_s": 600,
                                              "pid": pid}) + "\n")
            self.proc.stdin.flush()
            done: list[subprocess.CompletedProcess] = []

            def reply() -> dict:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("tests/cli_zygote.py died")
                return json.loads(line)

            def finish() -> subprocess.CompletedProcess:
                if not done:
                    done.append(subprocess.CompletedProcess(
                        ["rlxf", *args], reply()["rc"], out.read_text(), err.read_text()))
                return done[0]
            finish.pid = reply()["pid"] if pid else None
            try:
                yield finish
            finally:
                if not done and finish.pid is not None:
                    _kill(finish.pid)
                finish()

    def close(self) -> None:
        """End the zygote and wait for it: its children's CPU time then counts in ours."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_ZYGOTE = _Zygote()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it had ended
        pass


class Running:
    """An `rlxf` command running in a zygote child (`rlxf_started`)."""

    def __init__(self, finish):
        self.pid, self._finish = finish.pid, finish

    def running(self) -> bool:
        try:
            os.kill(self.pid, 0)  # the zygote waits on it, so an ended child is gone at once
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> subprocess.CompletedProcess:
        """SIGKILL, as `kill -9` would; returns once the child is gone."""
        _kill(self.pid)
        return self._finish()


@contextmanager
def rlxf_started(*args, cwd: Path | None = None):
    """`rlxf ARGS` started in a zygote child and left running: yields a `Running` to watch and
    kill; a child still running at the end of the block is killed."""
    with _ZYGOTE.started(_command_line(args), cwd, pid=True) as finish:
        yield Running(finish)


def rlxf(*args, check=True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m rlxf.cli ARGS` in its own process (forked from tests/cli_zygote.py), in `cwd`
    if given; `run` and `sweep` on one torch thread."""
    args = _command_line(args)
    proc = _ZYGOTE.run(args, cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlxf {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _command_line(args) -> list[str]:
    args = [str(a) for a in args]
    if args[:1] in (["run"], ["sweep"]) and "--help" not in args:
        args += THREADS
    return args


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
