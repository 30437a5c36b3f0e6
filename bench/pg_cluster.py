"""A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, loopback only), for the load
benchmarks and the tests' fixture: initdb in a temporary directory (as the `postgres` user when
running as root, since initdb refuses root), pg_ctl on a free port, removed afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are (PATH, else Debian's newest /usr/lib/postgresql/N/bin)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_cluster(bindir: Path, max_connections: int = 100) -> Iterator[str]:
    """Yields postgresql://postgres@127.0.0.1:PORT; fsync is off (nothing here must last)."""
    base = Path(tempfile.mkdtemp(prefix="rlxf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*args):
        proc = subprocess.run(as_user + [str(a) for a in args], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed: {proc.stdout}{proc.stderr}{log}")

    run(bindir / "initdb", "-D", data, "--auth=trust", "--username=postgres", "-E", "UTF8",
        "--no-sync")
    run(bindir / "pg_ctl", "-D", data, "-l", base / "log", "-w", "-t", "60",
        "-o", f"-p {port} -h 127.0.0.1 -k {base} -F -c max_connections={max_connections}",
        "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
