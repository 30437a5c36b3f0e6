"""`make examples`: run every example of examples/findings.toml over several training seeds and
regenerate, from each run's report.json, its results file (examples/results/NAME.json: every
finding with its interval and n, the seeds, the command, the commit) and the measured block of
its header (examples/NAME.toml); then check the over-optimisation alarm against gold over every
seed of every run (examples/results/alarm.json: lead or lag to the gold peak, false alarms). The quickstart runs first; the others `--reuse` it, so the
stages they share with it (same world, pretraining, SFT: same fingerprint) are copied, seed by
seed. Runs resume where they stopped (rlxf's run directories do).

  python examples/make_examples.py [--seeds 3] [--runs runs/examples] [--only NAME ...]
  python examples/make_examples.py --headers-only   # rewrite headers from the results files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

from rlxf.audit.findings import block, finding, rewrite

EXAMPLES = Path(__file__).resolve().parent
MANIFEST = EXAMPLES / "findings.toml"
RESULTS = EXAMPLES / "results"
BASE = "quickstart"


def manifest(path: Path = MANIFEST) -> list[dict]:
    examples = tomllib.loads(path.read_text())["example"]
    for ex in examples:
        ex.setdefault("command", "run")
        ex.setdefault("config", f"{ex['name']}.toml")
    return examples


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=EXAMPLES,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command(ex: dict, runs: Path, seeds: int) -> list[str]:
    args = ["rlxf", ex["command"], f"examples/{ex['config']}", "--out", str(runs / ex["name"]),
            "--seeds", str(seeds)]
    if ex["name"] != BASE:
        args += ["--reuse", str(runs / BASE)]
    return args


def results_of(ex: dict, report: dict, args: list[str]) -> dict:
    seeds = [m["seed"] for m in report["seeds"]["members"]]
    return {"example": ex["name"], "config": f"examples/{ex['config']}", "command": " ".join(args),
            "seeds": seeds, "date": date.today().isoformat(), "commit": commit(),
            "findings": [finding(report, spec) for spec in ex["findings"]]}


def write(ex: dict, results: dict, examples: Path = EXAMPLES) -> None:
    (examples / "results").mkdir(exist_ok=True)
    (examples / "results" / f"{ex['name']}.json").write_text(json.dumps(results, indent=1) + "\n")
    header(ex, results, examples)


def header(ex: dict, results: dict, examples: Path = EXAMPLES) -> None:
    toml = examples / ex["config"]
    toml.write_text(rewrite(toml.read_text(), block(results)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs", type=Path, default=Path("runs/examples"))
    ap.add_argument("--only", nargs="*", help="these examples (the quickstart runs anyway)")
    ap.add_argument("--headers-only", action="store_true",
                    help="rewrite every header from its results file; run nothing")
    a = ap.parse_args(argv)
    examples = manifest()
    if a.headers_only:
        for ex in examples:
            path = RESULTS / f"{ex['name']}.json"
            if path.exists():
                header(ex, json.loads(path.read_text()))
        return 0
    chosen = [ex for ex in examples if ex["name"] == BASE or not a.only or ex["name"] in a.only]
    for ex in chosen:
        args = command(ex, a.runs, a.seeds)
        print("$ " + " ".join(args), flush=True)
        subprocess.run([sys.executable, "-m", "rlxf", *args[1:]], cwd=EXAMPLES.parent, check=True)
        report = json.loads((EXAMPLES.parent / a.runs / ex["name"] / "report" /
                             "report.json").read_text())
        write(ex, results_of(ex, report, args))
        print(f"examples/results/{ex['name']}.json written", flush=True)
    alarm(examples, a.runs)
    return 0


def alarm(examples: list[dict], runs: Path) -> None:
    """The over-optimisation alarm against gold (issue 18) over every seed of every example
    run so far: lead or lag to the gold peak where gold fell, false alarms where it did not."""
    from rlxf.audit.alarm_lab import table, validate
    dirs = [EXAMPLES.parent / runs / ex["name"] for ex in examples]
    done = [d for d in dirs if (d / "ledger.jsonl").exists()]
    result = validate(done)
    print(table(result), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "alarm.json").write_text(json.dumps(
        {"date": date.today().isoformat(), "commit": commit(),
         "run_dirs": [os.path.relpath(d, EXAMPLES.parent) for d in done], **result},
        indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
