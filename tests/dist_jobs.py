"""Several jobs in turn in one process, for the accelerate tests (tests/conftest.py's
`dist_jobs`, read by tests/test_tune_distributed.py and tests/test_policy_distributed.py).
Run alone it is one process; run by `accelerate launch --num_processes 2` each of the two
processes runs every job in turn, so a launch pays the start-up (imports, the gloo group)
once, not once per job.

Usage: dist_jobs.py JOBS.json, a list of {"name": NAME, "argv": [...]}: argv is an `rlxf`
command line (run as `python -m rlxf ARGV` runs it, in this process) or ["dpo_worker", OUT,
ALGORITHM] (tests/dpo_worker.py) or ["group_rl_worker", OUT] (tests/group_rl_worker.py);
"exit", when given, is the exit code the job is expected to end with (a refusal), 0 otherwise.
Each job's stdout and stderr go to NAME.rankR.log beside
JOBS.json, R being this process's rank, so a test can read what one job printed. A job that
ends otherwise than expected ends the process with exit code 1 (or its own, when not 0), the
jobs after it not run."""

import json
import os
import sys
from pathlib import Path

WORKERS = ("dpo_worker", "group_rl_worker")  # modules beside this file, run by their main()


def redirect_output(path: Path) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


def run_job(argv: list[str]) -> int:
    if argv[0] in WORKERS:
        import importlib
        importlib.import_module(argv[0]).main(*argv[1:])
        return 0
    from rlxf.cli import app
    try:
        app(argv, prog_name="rlxf")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def main(jobs_file: str) -> None:
    jobs_file = Path(jobs_file)
    rank = os.environ.get("RANK", "0")
    for job in json.loads(jobs_file.read_text()):
        redirect_output(jobs_file.with_name(f"{job['name']}.rank{rank}.log"))
        code = run_job(job["argv"])
        if code != job.get("exit", 0):
            sys.exit(code or 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
