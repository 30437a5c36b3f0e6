"""Sign-in flood against a real `rlxf annotate serve`: N concurrent clients send wrong
passwords for T seconds while a signed-in annotator keeps using the app; the server's memory
(RSS of its process group, sampled every 0.1 s) and the signed-in user's latency are recorded.

    .venv/bin/python bench/signin_flood.py                 # both phases, 40 clients, 20 s each
    .venv/bin/python bench/signin_flood.py --json bench/results/signin_flood.json

Phase "one account" (the defaults): every attempt is on one account. After its burst of 40
attempts the account limit answers 429 without hashing; the check at the end is that attempt
number 41 (and every later one) was refused with 429.
Phase "many accounts": every attempt names another (unknown) account and the per-address limit
is lifted (--login-burst-per-address), as if the flood came from many addresses: every attempt
runs argon2 (64 MiB), and only the cap on concurrent hashes (1) bounds memory and CPU.
Phase "no flood" first measures the same signed-in user alone, for comparison on a shared
machine.
Bars (issue 17): RSS < 600 MB and the signed-in user's p99 < 500 ms in both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from annotate_load import ConnectionProblem, RawHTTP, Server, free_port, items_jsonl, pct


def rss_mb(pgid: int) -> float:
    """Resident memory of every process in the group (server and workers), in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e6


def setup(server: Server) -> tuple[str, dict, int]:
    """Admin, a victim account with a password, a signed-in annotator with a project."""
    c = httpx.Client(base_url=server.base, timeout=60)
    token = server.admin_link.rsplit("/", 1)[1]
    admin = {"Authorization": "Bearer " + c.post("/api/invites/accept",
                                                 json={"token": token}).json()["token"]}
    c.cookies.clear()
    r = c.post("/api/admin/projects", headers=admin,
               json={"name": "flood", "jsonl": items_jsonl(50), "gold_count": 0})
    project = r.json()["id"]
    people = []
    for password in ("the victim's password", None):
        inv = c.post("/api/admin/annotators", headers=admin, json={}).json()
        body = {"token": inv["invite_token"], **({"password": password} if password else {})}
        acc = c.post("/api/invites/accept", json=body).json()
        c.cookies.clear()
        people.append(acc)
    victim, user = people
    return victim["pid"], {"Authorization": "Bearer " + user["token"]}, project


async def flood(server: Server, victim: str | None, user: dict, project: int, clients: int,
                seconds: float) -> dict:
    codes: Counter = Counter()
    latencies: list[float] = []
    rss: list[float] = []
    stop = time.perf_counter() + seconds
    host, port = "127.0.0.1", server.port

    async def attacker():
        conn = RawHTTP(host, port)
        while time.perf_counter() < stop:
            pid = victim or "h-" + uuid.uuid4().hex[:8]
            body = json.dumps({"pid": pid, "password": "not the password"}).encode()
            try:
                status, _ = await conn.request("POST", "/api/login", {}, body)
                codes[status] += 1
            except ConnectionProblem as e:
                codes[str(e)] += 1
        await conn.close()

    async def signed_in():
        conn = RawHTTP(host, port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, _ = await conn.request("GET", f"/api/projects/{project}", user)
            latencies.append(time.perf_counter() - t0)
            codes[f"user {status}"] += 1
            await asyncio.sleep(0.05)
        await conn.close()

    async def sample():
        while time.perf_counter() < stop:
            rss.append(rss_mb(server.proc.pid))
            await asyncio.sleep(0.1)

    await asyncio.gather(*(attacker() for _ in range(clients)), signed_in(), sample())
    return {"attempts": dict(codes), "user_requests": len(latencies),
            "user_latency_ms": {"p50": round(1000 * pct(latencies, 0.5), 1),
                                "p99": round(1000 * pct(latencies, 0.99), 1),
                                "max": round(1000 * max(latencies), 1)},
            "rss_mb": {"max": round(max(rss), 1), "samples": len(rss)}}


def phase(name: str, args, victim_mode: bool, extra: list[str], clients: int) -> dict:
    tmp = tempfile.TemporaryDirectory(prefix="rlxf-flood-")
    server = Server(str(Path(tmp.name) / "a.db"), free_port(), 1, args.src)
    server.limit_args += extra
    server.start()
    try:
        victim, user, project = setup(server)
        rss0 = rss_mb(server.proc.pid)
        result = asyncio.run(flood(server, victim if victim_mode else None, user, project,
                                   clients, args.seconds))
        result["rss_mb"]["before"] = round(rss0, 1)
        if victim_mode:  # then one more attempt on the account, with the right password even
            r = httpx.post(server.base + "/api/login", timeout=30,
                           json={"pid": victim, "password": "the victim's password"})
            result["attempt_after_flood"] = r.status_code
    finally:
        server.stop()
        tmp.cleanup()
    ok = (result["rss_mb"]["max"] < 600 and result["user_latency_ms"]["p99"] < 500
          and not any(str(k).startswith("user 5") or k == 500 for k in result["attempts"]))
    if victim_mode:
        # 40 attempts in the burst (the invite acceptance was one): the rest are 429
        ok = ok and result["attempt_after_flood"] == 429 and \
            result["attempts"].get(401, 0) <= 39
    result["ok"] = ok
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--src", type=Path, default=None, help="serve this source tree's code")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {"clients": args.clients, "seconds": args.seconds,
               "machine": {"cores": os.cpu_count(), "loadavg_before": os.getloadavg()}}
    # the same signed-in user with no flood: what the loaded machine gives anyway
    results["no flood"] = phase("no flood", args, False, [], 0)
    results["one account"] = phase("one account", args, True, [], args.clients)
    results["many accounts"] = phase("many accounts", args, False,
                                     ["--login-burst-per-address", "1000000"], args.clients)
    results["machine"]["loadavg_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["one account"]["ok"] and results["many accounts"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
