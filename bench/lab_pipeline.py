"""Per-stage wall and CPU time of `rlxf run CONFIG` for two source trees, side by side.

    python bench/lab_pipeline.py --config examples/quickstart.toml \\
        --tree old=/path/to/main/src --tree new=src [--threads 0] [--out /tmp/labbench]
        [--until STAGE] [--start FINISHED_RUN --from STAGE]

Each stage runs as its own `python -m rlxf run CONFIG --out RUN --until STAGE` process (the
earlier stages are already done and skipped), once per tree, the trees back to back stage by
stage so both see the same load; the last process (no --until) also writes the report. Per stage
it prints the child process's wall and CPU time (user + sys, `resource.getrusage`), which
include the process's start and imports, and the stage's own wall time from RUN/ledger.jsonl.
The load average (`os.getloadavg`) before each stage is printed: on a machine shared with other
jobs wall time waits for a core and CPU time is the steadier clock. Writes the table as JSON to
OUT/lab_pipeline.json. Runs on whatever the trees' PYTHONPATH imports, with this interpreter."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def stage_names(src: Path) -> list[str]:
    """The pipeline's stages in the order they run, as the tree itself lists them."""
    code = "from rlxf.pipeline import STAGE_NAMES; print(' '.join(STAGE_NAMES))"
    out = subprocess.run([sys.executable, "-c", code], env=_env(src, 1), check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def _env(src: Path, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_stage(src: Path, config: Path, run: Path, until: str | None, threads: int,
              log: Path) -> dict:
    """One `rlxf run` process; its wall and CPU seconds."""
    cmd = [sys.executable, "-m", "rlxf", "run", str(config.resolve()), "--out", str(run)]
    cmd += ["--until", until] if until else []
    cmd += ["--threads", str(threads)] if threads else []
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with log.open("a") as f:
        done = subprocess.run(cmd, env=_env(src, threads), stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"process_wall_s": round(wall, 2), "process_cpu_s": round(cpu, 2)}


def ledger_walls(run: Path) -> dict[str, float]:
    walls = {}
    for line in (run / "ledger.jsonl").read_text().splitlines():
        rec = json.loads(line)
        walls[rec["stage"]] = rec.get("wall_time_s", rec.get("wall_s"))
    return walls


def start_from(finished: Path, run: Path, stages: list[str]) -> None:
    """`run`: a copy of the finished run without `stages` (outputs, checkpoints, ledger lines),
    so that `rlxf run` recomputes exactly those."""
    shutil.copytree(finished, run)
    for stage in stages:
        shutil.rmtree(run / stage, ignore_errors=True)
    shutil.rmtree(run / ".ckpt", ignore_errors=True)
    shutil.rmtree(run / ".partial", ignore_errors=True)
    lines = (run / "ledger.jsonl").read_text().splitlines()
    (run / "ledger.jsonl").write_text("".join(
        line + "\n" for line in lines if json.loads(line)["stage"] not in stages))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path("examples/quickstart.toml"))
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=SRC",
                    help="a source tree's src/ directory (give two)")
    ap.add_argument("--threads", type=int, default=0, help="rlxf run --threads (0: its default)")
    ap.add_argument("--until", help="stop after this stage (default: every stage and the report)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/lab_pipeline_bench"))
    ap.add_argument("--start", type=Path, metavar="RUN",
                    help="a finished run of CONFIG: each tree starts from a copy of it, with "
                         "--from and every later stage removed (their outputs and ledger lines)")
    ap.add_argument("--from", dest="first", metavar="STAGE", help="with --start: the first "
                    "stage to run (the earlier ones are RUN's, identical for both trees)")
    args = ap.parse_args()
    if (args.start is None) != (args.first is None):
        ap.error("--start and --from go together")
    trees = dict(t.split("=", 1) for t in args.tree)
    trees = {name: Path(src) for name, src in trees.items()}
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    stages = stage_names(next(iter(trees.values())))
    if args.until:
        stages = stages[: stages.index(args.until) + 1]
    if args.first:
        stages = stages[stages.index(args.first):]
        for name in trees:
            start_from(args.start, args.out / name, stages)
    rows: list[dict] = []
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1 and not args.until
        for name, src in trees.items():
            load = os.getloadavg()[0]
            t = run_stage(src, args.config, args.out / name, None if last else stage,
                          args.threads, args.out / f"{name}.log")
            rows.append({"stage": stage + (" + report" if last else ""), "tree": name,
                         "load_1m": round(load, 2), **t})
            print(f"{rows[-1]['stage']:18s} {name:6s} wall {t['process_wall_s']:8.1f} s  "
                  f"cpu {t['process_cpu_s']:8.1f} s  (load {load:.1f})", flush=True)
    ledger = {name: ledger_walls(args.out / name) for name in trees}
    names = list(trees)
    print(f"\n{'stage':18s}" + "".join(f"{n + ' wall':>12s}{n + ' cpu':>11s}{n + ' stage':>12s}"
                                      for n in names))
    totals = {n: [0.0, 0.0] for n in names}
    for stage in stages:
        line = f"{stage:18s}"
        for n in names:
            r = next(r for r in rows if r["tree"] == n and r["stage"].split(" ")[0] == stage)
            own = ledger[n].get(stage)
            totals[n][0] += r["process_wall_s"]
            totals[n][1] += r["process_cpu_s"]
            line += f"{r['process_wall_s']:12.1f}{r['process_cpu_s']:11.1f}" + \
                (f"{own:12.1f}" if isinstance(own, (int, float)) else f"{'-':>12s}")
        print(line)
    print(f"{'total':18s}" + "".join(f"{w:12.1f}{c:11.1f}{'':12s}" for w, c in totals.values()))
    if len(names) == 2:
        (wa, ca), (wb, cb) = totals[names[0]], totals[names[1]]
        print(f"\n{names[1]} / {names[0]}: wall {wb / wa:.3f}, cpu {cb / ca:.3f}")
    (args.out / "lab_pipeline.json").write_text(json.dumps(
        {"config": str(args.config), "trees": {n: str(s) for n, s in trees.items()},
         "threads": args.threads, "cpu_count": os.cpu_count(), "rows": rows,
         "ledger_stage_wall_s": ledger}, indent=1))


if __name__ == "__main__":
    main()
