"""CPU time of one label submission through the whole annotation app (ASGI, in process, no
sockets), for this checkout and a peer revision, alternating, on SQLite.

    .venv/bin/python bench/annotate_submit_cpu.py --peer 2a6c0dd --rounds 3

CPU time (not wall time) per request, so other jobs on a shared machine inflate it less than
latency; the ratio of the two, measured side by side in one run, is the number to quote. Each
round runs both versions in fresh processes: a project of N items, one annotator, batches of
100 assignments fetched then submitted one by one; the median batch is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import asyncio, json, os, sys, tempfile, time, uuid
sys.path.insert(0, os.environ["RLXF_TESTS"])
from fastapi.testclient import TestClient
from rlxf.server.app import create_app
from rlxf.server.cli import _new_admin
from rlxf.store import Store
from conftest import annotate_jsonl, annotate_records

n_items, batches = int(sys.argv[1]), int(sys.argv[2])
store = Store(f"sqlite:///{tempfile.mkdtemp()}/a.db")
store.migrate()
_, tok = _new_admin(store, "bench")
try:
    app = create_app(store, migrate=False, submit_rate=0)
except TypeError:  # a revision without the rate limit
    app = create_app(store, migrate=False)
c = TestClient(app)
admin = {"Authorization": "Bearer " + c.post("/api/invites/accept",
                                             json={"token": tok}).json()["token"]}
c.cookies.clear()
rows = annotate_records(n_items, judges=("s",))
p = c.post("/api/admin/projects", headers=admin, json={
    "name": "bench", "jsonl": annotate_jsonl(rows), "overlap": 1, "gold_count": 0}).json()
inv = c.post("/api/admin/annotators", headers=admin, json={}).json()
ann = "Bearer " + c.post("/api/invites/accept", json={"token": inv["invite_token"]}).json()["token"]
c.cookies.clear()


async def call(path, body):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"127.0.0.1"), (b"authorization", ann.encode()),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    sent, status = False, []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(m):
        if m["type"] == "http.response.start":
            status.append(m["status"])

    await app(scope, receive, send)
    return status[0]


async def batch(ids):
    t0 = time.process_time()
    for i in ids:
        body = json.dumps({"key": uuid.uuid4().hex, "choice": i % 2, "strength": 2,
                           "duration_ms": 3000}).encode()
        assert await call(f"/api/assignments/{i}/judgement", body) == 201
    return (time.process_time() - t0) / len(ids)


def fetch():
    r = c.post(f"/api/projects/{p['id']}/next?n=100", headers={"Authorization": ann})
    return [a["id"] for a in r.json()["assignments"]]


asyncio.run(batch(fetch()))  # warm-up
print(json.dumps([asyncio.run(batch(fetch())) for _ in range(batches)]))
'''


def run(src: Path, tests: Path, n_items: int, batches: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src), "RLXF_TESTS": str(tests)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n_items), str(batches)], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer", default=None, help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=8, help="batches of 100 per process")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n_items = 100 * (args.batches + 2)
    versions = {"this checkout": (ROOT / "src", ROOT / "tests")}
    tmp = tempfile.TemporaryDirectory(prefix="rlxf-peer-")
    if args.peer:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.peer, "src", "tests"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
        versions[args.peer] = (Path(tmp.name) / "src", Path(tmp.name) / "tests")
    per = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, (src, tests) in versions.items():
            per[name] += run(src, tests, n_items, args.batches)
    ms = {name: round(1000 * statistics.median(xs), 3) for name, xs in per.items()}
    summary = {"cpu_ms_per_submission_median": ms,
               "batches": {name: len(xs) for name, xs in per.items()},
               "machine": {"cores": os.cpu_count(), "loadavg": os.getloadavg(),
                           "python": platform.python_version()}}
    if args.peer:
        summary["peer_over_this"] = round(ms[args.peer] / ms["this checkout"], 2)
    for name, v in ms.items():
        print(f"{name}: {v} ms CPU per submission (median of {len(per[name])} batches of 100)")
    if args.peer:
        print(f"{args.peer} needs {summary['peer_over_this']}x the CPU of this checkout")
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
