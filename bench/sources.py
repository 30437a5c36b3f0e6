"""Two (or more) rlxf checkouts against the same TRL in one run: did a change make rlxf slower?

    python bench/sources.py --src before=/tmp/preengine --src now=. --only sft dpo --model 1m \
        --threads 1 --repeats 3

Each side of each repeat runs in its own process (a checkout's `rlxf` and `bench` packages
cannot share one), through that checkout's own `bench/run.py: one_run`, so every rlxf is timed
exactly as its own harness timed it; TRL fair runs from the first checkout's harness. The order
of the sides rotates every repeat, so a burst of load hits each side in turn. Per repeat:
every checkout's examples per CPU-second (and per wall second) over TRL's in that repeat, then
the median and [min, max]. Writes bench/results/<date>-<model>-sources-<tasks>.json and .md.

`--only grpo` runs `bench/run.py`'s GRPO row (rlxf's GRPO step on the workload's model) and
`--only grpo_files` the GRPO-from-files row (`rlxf grpo` against TRL's GRPOTrainer, the
same reward function): `--grpo-prompts` prompts x `--group` completions a step, at most
`--completion-len` new tokens, as `bench/run.py` runs it:

    python bench/sources.py --src main=/tmp/main --src branch=. --only grpo_files --model 1m \
        --threads 1 --repeats 3"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# The options a side's process needs to rebuild the workload and run one side of one task.
SIDE_OPTIONS = ("model", "pairs", "prompt_len", "completion_len", "batch", "steps", "warmup",
                "seed", "threads", "grpo_prompts", "group")


def side_main(argv: list[str]) -> None:
    """In the side's process: ROOT's harness and ROOT/src's rlxf first on the path."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--side", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--options", required=True, help="JSON of SIDE_OPTIONS")
    a = ap.parse_args(argv)
    sys.path[:0] = [str(a.root / "src"), str(a.root)]
    import torch
    import transformers

    import datasets
    from bench import run, trl_side
    from bench.workload import build

    opts = json.loads(a.options)
    torch.set_num_threads(opts["threads"])
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    args = argparse.Namespace(**opts, default_steps=0)
    w = build(args.model, args.pairs, args.prompt_len, args.completion_len, args.seed)
    # the item stream, as bench/run.py's bench_task makes it (GRPO: prompts, each `group` times)
    per_step = args.grpo_prompts if a.task in ("grpo", "grpo_files") else args.batch
    order = run.rlxf_side.batch_order(len(w.prompts), args.steps, per_step, args.seed)
    result = run.one_run(a.side, a.task, w, args, order, trl_side.FAIR)
    import rlxf
    result["rlxf_imported_from"] = rlxf.__file__
    print("RESULT " + json.dumps(result), flush=True)


def git_commit(root: Path) -> str:
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(root), *cmd], capture_output=True,
                              text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain",
                                                                   "--untracked-files=no", "--",
                                                                   "src", "bench") else "")


def run_side(root: Path, side: str, task: str, opts: dict) -> dict:
    cmd = [sys.executable, str(HERE / "sources.py"), "--side-process", "--root", str(root),
           "--side", side, "--task", task, "--options", json.dumps(opts)]
    env = {**os.environ, "OMP_NUM_THREADS": str(opts["threads"])}
    env.pop("PYTHONPATH", None)  # the side process puts its own checkout first
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} ({root}) {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "per_repeat": values}


def markdown(result: dict) -> str:
    cfg, names = result["config"], list(result["sources"])
    lines = [f"# rlxf checkouts side by side vs TRL fair ({cfg['model']} model)", "",
             f"{result['date']}, nproc {os.cpu_count()}, torch threads {cfg['threads']}, load "
             f"average at start {result['loadavg_at_start']}, at end {result['loadavg_at_end']}; "
             f"{cfg['repeats']} repeats, {cfg['steps']} steps timed after {cfg['warmup']}, batch "
             f"{cfg['batch']}.", "", "Command: `" + result["command"] + "`", "",
             "Checkouts: " + "; ".join(f"**{n}** = {s['root']} at {s['commit']}"
                                       for n, s in result["sources"].items()) + ".", "",
             "| task | side | examples/s | per CPU-s | vs TRL fair, CPU time: median [min, max] "
             "| wall | step-0 loss |", "|---|---|---|---|---|---|---|"]
    for task, t in result["tasks"].items():
        for side in names + ["trl_fair"]:
            runs = [r[side] for r in t["repeats"]]
            eps = statistics.median(r["examples_per_s"] for r in runs)
            cps = statistics.median(r["examples_per_cpu_s"] for r in runs)
            ratio = t["ratios"].get(side)
            rc = (f"**{ratio['cpu']['median']:.2f}x** [{ratio['cpu']['min']:.2f}, "
                  f"{ratio['cpu']['max']:.2f}]" if ratio else "-")
            rw = (f"{ratio['wall']['median']:.2f}x [{ratio['wall']['min']:.2f}, "
                  f"{ratio['wall']['max']:.2f}]" if ratio else "-")
            lines.append(f"| {task} | {side} | {eps:.1f} | {cps:.1f} | {rc} | {rw} | "
                         f"{runs[0]['first_loss']:.6f} |")
        for a, b in zip(names, names[1:]):
            rel = t["ratios"][f"{b}/{a}"]
            lines.append(f"| {task} | {b} / {a} | | | {rel['cpu']['median']:.2f}x "
                         f"[{rel['cpu']['min']:.2f}, {rel['cpu']['max']:.2f}] | "
                         f"{rel['wall']['median']:.2f}x | |")
    lines += ["", "Each side runs in its own process through its checkout's own "
              "`bench/run.py: one_run` (TRL fair from the first checkout's harness); ratios are "
              "per repeat (same repeat's TRL), then median [min, max] over the repeats.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--side-process"]:
        return side_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", action="append", required=True, metavar="NAME=ROOT",
                    help="an rlxf checkout (its src/ and bench/); two or more")
    ap.add_argument("--only", nargs="+", choices=("sft", "reward", "dpo", "grpo", "grpo_files"),
                    default=["sft", "dpo"])
    ap.add_argument("--model", default="1m")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--grpo-prompts", type=int, default=4, help="GRPO: prompts per step")
    ap.add_argument("--group", type=int, default=8, help="GRPO: completions per prompt (G)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sources = {}
    for spec in args.src:
        name, _, root = spec.partition("=")
        root = Path(root).resolve()
        sources[name] = {"root": str(root), "commit": git_commit(root)}
    opts = {k: getattr(args, k) for k in SIDE_OPTIONS}
    names = list(sources)
    trl_root = Path(sources[names[0]]["root"])
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"),
              "command": "python bench/sources.py " + " ".join(argv),
              "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
              "config": {**opts, "repeats": args.repeats}, "sources": sources, "tasks": {}}
    for task in args.only:
        repeats = []
        for r in range(args.repeats):
            sides = names + ["trl_fair"]
            sides = sides[r % len(sides):] + sides[:r % len(sides)]  # rotate the order
            got = {}
            for side in sides:
                root = trl_root if side == "trl_fair" else Path(sources[side]["root"])
                got[side] = run_side(root, "trl_fair" if side == "trl_fair" else "rlxf", task,
                                     opts)
                print(f"  {task} repeat {r} {side:10s} {got[side]['examples_per_s']:7.2f}/s "
                      f"{got[side]['examples_per_cpu_s']:7.2f}/CPU-s  first loss "
                      f"{got[side]['first_loss']}", flush=True)
            repeats.append(got)

        def ratio(a: str, b: str) -> dict:
            return {"cpu": summarise([p[a]["examples_per_cpu_s"] / p[b]["examples_per_cpu_s"]
                                      for p in repeats]),
                    "wall": summarise([p[a]["examples_per_s"] / p[b]["examples_per_s"]
                                       for p in repeats])}
        ratios = {n: ratio(n, "trl_fair") for n in names}
        ratios.update({f"{b}/{a}": ratio(b, a) for a, b in zip(names, names[1:])})
        result["tasks"][task] = {"repeats": repeats, "ratios": ratios}
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['date'][:10]}-{args.model}-sources-{'-'.join(args.only)}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
