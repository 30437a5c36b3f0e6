"""Completions/s of `rlxf serve` with 8 concurrent clients: batched (`--max-batch 8`) against the
one-generation-at-a-time server (`--max-batch 1`, what rlxf served before batching), in one run.

    python bench/serve_batching.py                       # 3 repeats, 1 torch thread per server
    python bench/serve_batching.py --repeats 5 --baseline-src /work/main/src

Both servers serve the same random-weight Llama directory (built here from a config with the
tests' byte-level BPE tokenizer: no download) and get the same requests: each of 8 client
threads sends `--requests` chat completions one after another (greedy, `--max-tokens` each,
prompts of different lengths). Since greedy replies do not depend on the batch, both servers
must return identical replies, which the script checks: the two sides do the same work.
The servers take turns (alternating which goes first in each repeat) and only one is loaded at
a time. Reported per side and repeat: completions/s and completion tokens/s (wall clock), and
the server process's CPU seconds per completion (on a machine shared with other jobs, CPU time
is the steadier measure of the work); ratios batched / one-at-a-time per repeat, then median
and [min, max]. `--baseline-src DIR` adds a third server run from another checkout's `src/`
(today's main, say), started without the options it may not have.
Writes bench/results/<date>-serve-batching.json and .md (`--render FILE.json` rewrites the .md
from a stored JSON)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from bench.measure import machine, versions  # noqa: E402
from bench.pg_cluster import free_port  # noqa: E402

CLIENTS = 8
QUESTIONS = ["hi", "what is the capital of france ?", "write a haiku about the sea .",
             "how do i kill a python process ? " * 2, "you are a helpful assistant . " * 3,
             "i am not sure .", "the tide keeps time , waves fold into foam . " * 3, "paris ?",
             "answer briefly and honestly . what is the capital of france ?",
             "use kill with its process id . " * 4]


def build_model(path: Path) -> tuple[Path, int]:
    """A random-weight Llama (4 layers, d=256) with the tests' tokenizer; (dir, parameters)."""
    from hf_models import build_tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=688,
                      num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                      max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      initializer_range=0.2)  # replies that depend on the prompt
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, sum(p.numel() for p in model.parameters())


class Server:
    """`rlxf serve` in a subprocess (the given source tree first on the path)."""

    def __init__(self, label: str, model_dir: Path, src: Path, options: list[str], threads: int):
        self.label, self.port = label, free_port()
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlxf", "serve", str(model_dir), "--name", "bench",
             "--port", str(self.port), "--threads", str(threads), *options],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"{self.url}/models", timeout=2)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"{label}: rlxf serve did not start: "
                                     f"{self.proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.3)

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU time so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(server: Server, requests: int, max_tokens: int) -> dict:
    """8 clients, each sending `requests` completions back to back; every reply kept."""
    replies: list[list[dict]] = [[] for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS + 1)

    def client(c: int) -> None:
        with httpx.Client(timeout=600) as http:
            start.wait()
            for r in range(requests):
                question = QUESTIONS[(c + r * CLIENTS) % len(QUESTIONS)]
                body = {"model": "bench", "temperature": 0, "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": question}]}
                reply = http.post(f"{server.url}/chat/completions", json=body)
                reply.raise_for_status()
                replies[c].append(reply.json())

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    cpu0 = server.cpu_seconds()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    flat = [r for client_replies in replies for r in client_replies]
    if len(flat) != CLIENTS * requests:
        raise SystemExit(f"{server.label}: {len(flat)} of {CLIENTS * requests} replies came back")
    tokens = sum(r["usage"]["completion_tokens"] for r in flat)
    return {"completions": len(flat), "completion_tokens": tokens, "wall_s": round(wall, 3),
            "server_cpu_s": round(cpu, 3), "completions_per_s": round(len(flat) / wall, 3),
            "tokens_per_s": round(tokens / wall, 2),
            "server_cpu_s_per_completion": round(cpu / len(flat), 4),
            "texts": [[r["choices"][0]["message"]["content"] for r in rs] for rs in replies]}


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=6, help="completions per client per repeat")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per server")
    ap.add_argument("--baseline-src", type=Path, help="another checkout's src/, served as a "
                                                      "third side with its own defaults")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--render", type=Path, help="only rewrite the .md table from this stored "
                                                "result JSON")
    args = ap.parse_args()
    if args.render:
        record = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(record, list(record["sides"])))
        return
    work = Path(tempfile.mkdtemp(prefix="rlxf-serve-bench-"))
    model_dir, n_params = build_model(work / "model")
    sides = {"batched": (ROOT / "src", ["--max-batch", str(CLIENTS)]),
             "one_at_a_time": (ROOT / "src", ["--max-batch", "1"])}
    if args.baseline_src:
        sides["baseline_src"] = (args.baseline_src.resolve(), [])
    record = {"what": "rlxf serve, 8 concurrent clients: batched vs one generation at a time",
              "command": "python bench/serve_batching.py " + " ".join(sys.argv[1:]),
              "machine": machine(), "versions": versions(), "model_parameters": n_params,
              "clients": CLIENTS, "requests_per_client": args.requests,
              "max_tokens": args.max_tokens, "server_threads": args.threads,
              "sides": {k: {"src": str(v[0]), "options": v[1]} for k, v in sides.items()},
              "repeats": []}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        row = {"order": order}
        for label in order:
            src, options = sides[label]
            server = Server(label, model_dir, src, options, args.threads)
            try:
                load(server, 1, 4)  # warm-up: first-call dispatch, allocator growth
                row[label] = load(server, args.requests, args.max_tokens)
            finally:
                server.stop()
            print(f"repeat {repeat + 1} {label}: {row[label]['completions_per_s']} "
                  f"completions/s, {row[label]['server_cpu_s_per_completion']} server CPU s "
                  f"per completion", flush=True)
        texts = {label: row[label].pop("texts") for label in sides}
        row["same_replies"] = all(t == texts["batched"] for t in texts.values())
        if not row["same_replies"]:
            raise SystemExit(f"repeat {repeat + 1}: the servers' greedy replies differ")
        row["load_average"] = [round(x, 2) for x in os.getloadavg()]
        record["repeats"].append(row)
    reps = record["repeats"]
    record["ratio_batched_vs_one_at_a_time"] = {
        "completions_per_s": spread([r["batched"]["completions_per_s"]
                                     / r["one_at_a_time"]["completions_per_s"] for r in reps]),
        "server_cpu_per_completion": spread([r["one_at_a_time"]["server_cpu_s_per_completion"]
                                             / r["batched"]["server_cpu_s_per_completion"]
                                             for r in reps])}
    if args.baseline_src:
        record["ratio_batched_vs_baseline_src"] = {
            "completions_per_s": spread([r["batched"]["completions_per_s"]
                                         / r["baseline_src"]["completions_per_s"] for r in reps])}
    for label in sides:
        record[f"{label}_completions_per_s"] = spread([r[label]["completions_per_s"] for r in reps])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{dt.date.today().isoformat()}-serve-batching"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(record, list(sides)))
    print(stem.with_suffix(".md").read_text())
    print(f"wrote {stem}.json and .md")


def markdown(record: dict, labels: list[str]) -> str:
    ratio = record["ratio_batched_vs_one_at_a_time"]

    def fmt(s: dict, unit: str = "x") -> str:
        return f"**{s['median']}{unit}** [{s['min']}, {s['max']}] (n={s['n']})"

    lines = [f"# rlxf serve batching, {record['clients']} concurrent clients", "",
             f"`{record['command']}` — {record['model_parameters']:,}-parameter Llama, "
             f"{record['requests_per_client']} greedy completions per client of up to "
             f"{record['max_tokens']} tokens, {record['server_threads']} torch thread(s) per "
             f"server, {record['machine']['nproc']} cores shared with other jobs (load average "
             f"at start {record['machine']['loadavg_at_start']}); rlxf "
             f"{record['versions']['rlxf_commit']}.", "",
             "| repeat | " + " | ".join(f"{label} completions/s (server CPU s/completion)"
                                       for label in labels) + " | load |",
             "|---|" + "---|" * len(labels) + "---|"]
    for i, r in enumerate(record["repeats"], 1):
        lines.append(f"| {i} | " + " | ".join(
            f"{r[label]['completions_per_s']} ({r[label]['server_cpu_s_per_completion']})"
            for label in labels) + f" | {r['load_average']} |")
    lines += ["", f"Batched / one at a time, completions/s (wall): "
                  f"{fmt(ratio['completions_per_s'])}; server CPU seconds per completion, "
                  f"one at a time / batched: {fmt(ratio['server_cpu_per_completion'])}.", ""]
    if "ratio_batched_vs_baseline_src" in record:
        lines += [f"Batched / baseline source ({record['sides']['baseline_src']['src']}), "
                  f"completions/s: {fmt(record['ratio_batched_vs_baseline_src']['completions_per_s'])}.",
                  ""]
    lines += ["Every repeat checked that all servers returned the same greedy replies.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
