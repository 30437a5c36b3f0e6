"""Load test of the annotation app on 127.0.0.1: N concurrent annotators submit M labels to a
real `rlxf annotate serve` (uvicorn) on a SQLite file; then every acknowledged label must be in
the export exactly once.

    .venv/bin/python bench/annotate_load.py                      # 50 annotators, 10,000 labels
    .venv/bin/python bench/annotate_load.py --fault              # kill -9 the server mid-load,
                                                                 # restart it, finish
    .venv/bin/python bench/annotate_load.py --postgres           # a throwaway PostgreSQL cluster
    .venv/bin/python bench/annotate_load.py --db postgresql://... --labels 2000

Each annotator loops: POST /api/projects/P/next (a batch of assignments), then one POST
/api/assignments/A/judgement per item with a fresh idempotency key. A submission that fails
(connection refused while the server is down, a 5xx) is retried with the same key until it is
acknowledged; the latency figures are for submissions only (first try to acknowledgement).
It passes only if every acknowledged label is exported exactly once, no annotator was starved
(an empty batch while their share of the work was not done, unless the server said `waiting`)
and no answer was a 5xx.
Bounded: a fixed number of labels, a wall-clock limit (--timeout), loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rlxf annotate serve` in its own process group, so kill -9 takes every worker."""

    def __init__(self, db: str, port: int, workers: int, src: Path | None = None):
        self.db, self.port, self.workers = db, port, workers
        # --src: serve another checkout's code (a peer revision), same client and settings
        self.env = {**os.environ, "PYTHONPATH": str(src)} if src else None
        help_text = subprocess.run([sys.executable, "-m", "rlxf.cli", "annotate", "serve",
                                    "--help"], capture_output=True, text=True, env=self.env,
                                   timeout=120, check=False).stdout
        self.limit_args = ["--submit-rate", "100000", "--submit-burst", "100000"] \
            if "--submit-rate" in help_text else []
        self.proc: subprocess.Popen | None = None
        self.admin_link: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlxf.cli", "annotate", "serve", "--db", self.db,
             "--port", str(self.port), "--workers", str(self.workers),
             # 50 scripted annotators at ~20 labels/s each: far above a person's pace, so the
             # per-account limit is raised (it still runs on every submission)
             *self.limit_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env=self.env)
        for line in self.proc.stdout:
            m = re.search(r"(http://\S+/invite/\S+)", line)
            self.admin_link = m.group(1) if m else self.admin_link
            if "rlxf annotate on" in line:
                break
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.base + "/login", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not come up")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def items_jsonl(n: int) -> str:
    rows = []
    for i in range(n):
        rows.append({"id": f"c{i:06d}/sim", "item_id": f"c{i:06d}", "type": "pairwise",
                     "prompt": f"what is the capital of veloria ? ({i})",
                     "responses": [f"the capital of veloria is hulm . ({i})",
                                   f"what a great question ! the capital is tamsk . ({i})"],
                     "choice": 0, "annotator": {"id": "sim"}, "source": "simulated"})
    return "".join(json.dumps(r) + "\n" for r in rows)


def setup(server: Server, n_annotators: int, n_labels: int, overlap: int) -> tuple[int, dict, list]:
    """Admin signs in, creates a project with enough items, invites the annotators."""
    c = httpx.Client(base_url=server.base, timeout=60)
    token = server.admin_link.rsplit("/", 1)[1]
    admin = {"Authorization": "Bearer " + c.post("/api/invites/accept",
                                                 json={"token": token}).json()["token"]}
    c.cookies.clear()
    n_items = n_labels // overlap + n_annotators * 2  # slack so nobody starves at the end
    r = c.post("/api/admin/projects", headers=admin,
               json={"name": "load test", "jsonl": items_jsonl(n_items), "overlap": overlap,
                     "gold_count": 0})
    r.raise_for_status()
    project = r.json()["id"]
    people = []
    for i in range(n_annotators):
        inv = c.post("/api/admin/annotators", headers=admin, json={"note": f"load {i}"}).json()
        acc = c.post("/api/invites/accept", json={"token": inv["invite_token"]}).json()
        c.cookies.clear()
        people.append({"Authorization": "Bearer " + acc["token"]})
    return project, admin, people


class ConnectionProblem(Exception):
    pass


class RawHTTP:
    """A bare HTTP/1.1 keep-alive client on asyncio streams, for the load phase only.

    Why not httpx: on this 2-core machine httpx spent ~4 ms of CPU per request, nearly three
    times the server's cost, so the client, not the server, set the pace (measured; run with
    --client httpx to see). This client does only what the app's JSON API needs: one request
    at a time per connection, Content-Length bodies."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict, body: bytes = b""):
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                    f"Content-Length: {len(body)}", "Content-Type: application/json",
                    *(f"{k}: {v}" for k, v in headers.items()), "", ""]
            self.writer.write("\r\n".join(head).encode() + body)
            status = int((await self.reader.readline()).split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            data = await self.reader.readexactly(length)
            if close:
                await self.close()
            return status, data
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as e:
            await self.close()
            raise ConnectionProblem(type(e).__name__) from None


class HttpxClient:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def request(self, method: str, path: str, headers: dict, body: bytes = b""):
        try:
            r = await self.client.request(method, path, headers={
                **headers, "Content-Type": "application/json"}, content=body)
        except httpx.TransportError as e:
            raise ConnectionProblem(type(e).__name__) from None
        return r.status_code, r.content

    async def close(self):
        pass


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (the server and its
    uvicorn workers), from /proc (Linux)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


class Load:
    def __init__(self, base: str, project: int, people: list, n_labels: int, batch: int,
                 rate: float, client: str = "raw"):
        self.client = client
        self.base, self.project, self.people = base, project, people
        self.interval = len(people) / rate if rate > 0 else 0.0  # per annotator, seconds
        self.quota = [n_labels // len(people) + (i < n_labels % len(people))
                      for i in range(len(people))]
        self.batch = batch
        self.latencies: list[float] = []  # seconds, submissions acknowledged on the first try
        self.retried_latencies: list[float] = []
        self.acked: dict[str, dict] = {}  # record id -> what the client sent
        self.retries = 0
        self.errors: Counter = Counter()
        self.done = 0

    async def request(self, client, method, url, headers, body=None):
        """Retry transport errors and 5xx until an answer; 4xx is a bug and raises."""
        attempt = 0
        data = json.dumps(body).encode() if body is not None else b""
        while True:
            try:
                status, content = await client.request(method, url, headers, data)
                if status < 500:
                    if status >= 400:
                        raise RuntimeError(f"{method} {url}: {status} {content[:300]!r}")
                    return json.loads(content), attempt
                self.errors[f"http {status}"] += 1
            except ConnectionProblem as e:
                self.errors[str(e)] += 1
            attempt += 1
            self.retries += 1
            await asyncio.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)))

    async def annotator(self, client, i: int):
        headers, left = self.people[i], self.quota[i]
        # Paced (--rate): each annotator submits on a fixed schedule, offset so the 50 do not
        # fire together; the latency is then the server's, not queueing behind 49 others.
        next_at = time.perf_counter() + self.interval * i / len(self.people)
        while left > 0:
            n = min(self.batch, left)
            r, _ = await self.request(client, "POST", f"/api/projects/{self.project}/next?n={n}",
                                      headers)
            batch = r["assignments"]
            if not batch and r.get("waiting"):
                self.errors["waiting"] += 1  # others held the last items: ask again
                await asyncio.sleep(0.2)
                continue
            if not batch:
                self.errors["starved"] += 1
                return
            for a in batch[:left]:
                if self.interval:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += self.interval
                body = {"key": uuid.uuid4().hex, "choice": a["id"] % 2, "strength": 2,
                        "duration_ms": 3000}
                t0 = time.perf_counter()
                r, attempts = await self.request(client, "POST",
                                                 f"/api/assignments/{a['id']}/judgement",
                                                 headers, body)
                dt = time.perf_counter() - t0
                (self.retried_latencies if attempts else self.latencies).append(dt)
                self.acked[r["id"]] = body
                self.done += 1
                left -= 1

    async def run(self, on_progress=None):
        limits = httpx.Limits(max_connections=len(self.people) + 10,
                              max_keepalive_connections=len(self.people) + 10)
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=30) as shared:
            host, port = self.base.split("//")[1].split(":")
            # one connection per annotator, as each person's browser would keep
            clients = [RawHTTP(host, int(port)) if self.client == "raw" else HttpxClient(shared)
                       for _ in self.people]
            tasks = [asyncio.create_task(self.annotator(clients[i], i))
                     for i in range(len(self.people))]
            if on_progress:
                tasks.append(asyncio.create_task(on_progress(self)))
            try:
                await asyncio.gather(*tasks)
            finally:
                for c in clients:
                    await c.close()


def run_loop(coro, loop: str):
    if loop == "uvloop":
        import uvloop
        return uvloop.run(coro)
    return asyncio.run(coro)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--overlap", type=int, default=5)
    ap.add_argument("--batch", type=int, default=20, help="assignments fetched per /next")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw",
                    help="HTTP client of the load phase (see RawHTTP)")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="the client's event loop (uvloop: less client CPU per request, so the "
                         "client takes less of the cores it shares with the server)")
    ap.add_argument("--rate", type=float, default=0,
                    help="offered load in labels/s, spread over the annotators (0: each "
                         "annotator submits as fast as it gets answers -- a closed loop)")
    ap.add_argument("--db", default=None, help="default: a SQLite file in a temporary directory")
    ap.add_argument("--postgres", action="store_true",
                    help="serve from a throwaway PostgreSQL cluster (bench/pg_cluster.py)")
    ap.add_argument("--fault", action="store_true",
                    help="kill -9 the server after --kill-at labels, restart it, finish")
    ap.add_argument("--kill-at", type=float, default=0.4, help="fraction of labels")
    ap.add_argument("--timeout", type=float, default=600, help="wall-clock limit in seconds")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--src", type=Path, default=None,
                    help="serve the code of this source tree (e.g. a peer revision's src/ from "
                         "`git archive REV src | tar -x -C DIR`); default: the installed rlxf")
    args = ap.parse_args()

    with ExitStack() as stack:
        if args.postgres:
            db = stack.enter_context(scratch_database())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="rlxf-load-"))
            db = args.db or str(Path(tmp) / "annotate.db")
        return measure(args, db)


@contextmanager
def scratch_database():
    sys.path.append(str(Path(__file__).parents[1]))
    import psycopg

    from bench.pg_cluster import pg_bindir, throwaway_cluster
    bindir = pg_bindir()
    if bindir is None:
        raise SystemExit("--postgres: initdb / pg_ctl not found (apt-get install postgresql)")
    with throwaway_cluster(bindir, max_connections=200) as server:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE annotate")
        yield f"{server}/annotate"


def measure(args, db: str) -> int:
    server = Server(db, free_port(), args.workers, args.src)
    server.start()
    try:
        project, admin, people = setup(server, args.annotators, args.labels, args.overlap)
        load = Load(server.base, project, people, args.labels, args.batch, args.rate,
                    args.client)
        cpu0, client_cpu0 = cpu_seconds(server.proc.pid), time.process_time()
        kills = []

        async def fault(load: Load):
            while load.done < args.kill_at * args.labels:
                await asyncio.sleep(0.01)
            server.kill9()
            kills.append({"at_label": load.done, "time": time.time()})
            print(f"kill -9 after {load.done} acknowledged labels; restarting", flush=True)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.start)
            kills[-1]["down_s"] = round(time.time() - kills[-1]["time"], 2)

        t0 = time.perf_counter()
        run_loop(asyncio.wait_for(load.run(fault if args.fault else None), args.timeout),
                 args.loop)
        wall = time.perf_counter() - t0
        server_cpu = cpu_seconds(server.proc.pid) - cpu0 if not kills else None
        client_cpu = time.process_time() - client_cpu0

        r = httpx.get(f"{server.base}/api/admin/projects/{project}/export", headers=admin,
                      timeout=120)
        r.raise_for_status()
        exported = [json.loads(line) for line in r.text.splitlines()]
    finally:
        server.stop()

    counts = Counter(rec["id"] for rec in exported)
    by_id = {rec["id"]: rec for rec in exported}
    lost = [rid for rid in load.acked if rid not in by_id]
    duplicated = [rid for rid, n in counts.items() if n > 1]
    extra = [rid for rid in counts if rid not in load.acked]
    mismatched = [rid for rid, body in load.acked.items() if rid in by_id and (
        by_id[rid]["provenance"]["submission"] != body["key"]
        or by_id[rid]["choice"] != body["choice"])]
    lat = load.latencies
    summary = {
        "annotators": args.annotators, "labels_acknowledged": len(load.acked),
        "workers": args.workers, "db": "postgresql" if db.startswith("postgres") else "sqlite",
        "wall_s": round(wall, 2), "labels_per_s": round(len(load.acked) / wall, 1),
        "latency_ms": {"p50": round(1000 * pct(lat, 0.50), 2),
                       "p99": round(1000 * pct(lat, 0.99), 2),
                       "max": round(1000 * max(lat), 2) if lat else None,
                       "mean": round(1000 * statistics.fmean(lat), 2) if lat else None},
        "offered_rate": args.rate or "closed loop", "client": args.client, "loop": args.loop,
        "server_src": str(args.src) if args.src else "installed",
        "cpu_ms_per_label": {"server": round(1000 * server_cpu / len(load.acked), 3)
                             if server_cpu is not None else None,
                             "client": round(1000 * client_cpu / len(load.acked), 3)},
        "machine": {"cores": os.cpu_count(), "loadavg_after": os.getloadavg()},
        "submissions_retried": len(load.retried_latencies), "retries": load.retries,
        "errors_seen": dict(load.errors), "kills": kills,
        "http_5xx": sum(n for k, n in load.errors.items() if k.startswith("http 5")),
        "starved": load.errors["starved"],
        "exported": len(exported), "lost": len(lost), "duplicated": len(duplicated),
        "unacknowledged_in_export": len(extra), "mismatched": len(mismatched),
    }
    print(f"{summary['labels_acknowledged']} labels from {args.annotators} annotators in "
          f"{summary['wall_s']} s: {summary['labels_per_s']} labels/s; latency p50 "
          f"{summary['latency_ms']['p50']} ms, p99 {summary['latency_ms']['p99']} ms "
          f"({len(lat)} first-try submissions)")
    print(f"CPU per label: server {summary['cpu_ms_per_label']['server']} ms, client "
          f"{summary['cpu_ms_per_label']['client']} ms; load average after "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"export: {len(exported)} records; lost {len(lost)}, duplicated {len(duplicated)}, "
          f"unacknowledged {len(extra)}, mismatched {len(mismatched)}")
    print(f"HTTP 5xx answers {summary['http_5xx']}, annotators starved {summary['starved']}")
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    ok = not lost and not duplicated and not extra and not mismatched and \
        len(load.acked) == args.labels and not summary["http_5xx"] and not summary["starved"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
