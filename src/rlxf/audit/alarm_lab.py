"""The over-optimisation alarm (rlxf.audit.overopt_alarm) checked against gold, in the lab only:
for each run (a run directory, each of its seeds, each member of its `rlxf sweep`), where gold
utility peaked, whether it fell, and where the alarm fired -- how many steps before (negative)
or after the gold peak, and false alarms on runs whose gold did not fall. Takes any number of runs (seeds, sweep
members, examples), so the answer is a count over runs, not one anecdote.

    python -m rlxf.audit.alarm_lab RUN [RUN ...] [--gold-drop 0.03] [--json OUT]

Gold "falls" when the last eval point is more than `gold_drop` below the peak (the lab's
threshold, printed with the result; history points carry no standard error of their gold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..rundir import RunDir
from .overopt_alarm import PATIENCE, overopt_alarm
from .pooled import seed_dirs

GOLD_DROP = 0.03


def gold_course(history: list[dict], gold_drop: float = GOLD_DROP) -> dict:
    """Where gold peaked and whether it then fell by more than `gold_drop`."""
    gold = [(h.get("step"), h.get("gold/utility")) for h in history
            if h.get("gold/utility") is not None]
    if not gold:
        return {"peak_step": None, "peak": None, "last": None, "falls": None}
    peak_step, peak = max(gold, key=lambda sg: sg[1])  # the first of equal peaks
    last = gold[-1][1]
    return {"peak_step": peak_step, "peak": peak, "last": last,
            "falls": peak - last > gold_drop}


def check_run(history: list[dict], n_prompts: int | None, name: str,
              gold_drop: float = GOLD_DROP) -> dict:
    alarm = overopt_alarm(history, n_prompts)
    gold = gold_course(history, gold_drop)
    offset = (alarm["step"] - gold["peak_step"]
              if alarm["fired"] and gold["peak_step"] is not None else None)
    return {"run": name, "gold": gold, "alarm_fired": alarm["fired"], "alarm_step": alarm["step"],
            "alarm_signals": alarm["signals"], "steps_after_gold_peak": offset,
            "false_alarm": alarm["fired"] and gold["falls"] is False,
            "missed": (not alarm["fired"]) and gold["falls"] is True,
            "available": alarm["available"], "last_step": history[-1].get("step"),
            "points": len(history)}


def histories(run_dir: Path) -> list[tuple[str, list[dict], int | None]]:
    """(name, history, eval prompts) of a run directory's policy stage and of each sweep
    member's, for every seed of a `--seeds N` run."""
    out, seen = [], set()
    dirs = [m for seed in seed_dirs(run_dir)
            for m in [seed, *sorted(p for p in (seed / "sweep").glob("*=*") if p.is_dir())]]
    for d in dirs:
        rec = RunDir(d).latest().get("policy")
        path = d / "policy" / "history.json"
        # a sweep member with the run's own policy links to it (sweep.py): count it once
        if rec is None or not path.exists() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        name = str(d)
        out.append((name, json.loads(path.read_text()), rec["counts"].get("eval_prompts")))
    return out


def validate(run_dirs: list[Path], gold_drop: float = GOLD_DROP) -> dict:
    """Counts over the runs whose history can fire the alarm at all: a history with fewer than
    PATIENCE points after step 0 (best-of-n: SFT and one policy point) is neither a miss nor a
    quiet run; they are listed and counted apart (`too_short`)."""
    every = [check_run(h, n, name, gold_drop)
             for d in run_dirs for name, h, n in histories(Path(d))]
    runs = [r for r in every if r["points"] > PATIENCE]
    falling = [r for r in runs if r["gold"]["falls"]]
    steady = [r for r in runs if r["gold"]["falls"] is False]
    return {"gold_drop": gold_drop, "runs": runs,
            "too_short": [r["run"] for r in every if r["points"] <= PATIENCE],
            "summary": {"runs": len(runs), "too_short": len(every) - len(runs),
                        "gold_falls": len(falling),
                        "detected": sum(r["alarm_fired"] for r in falling),
                        "steps_after_gold_peak": [r["steps_after_gold_peak"] for r in falling
                                                  if r["alarm_fired"]],
                        "gold_steady": len(steady),
                        "false_alarms": sum(r["false_alarm"] for r in steady)}}


def table(result: dict) -> str:
    rows = [f"{'run':<40} {'gold peak':>14} {'last':>6} {'falls':>5} {'alarm':>6} "
            f"{'vs peak':>7}  signals"]
    for r in result["runs"]:
        g = r["gold"]
        peak = "—" if g["peak"] is None else f"{g['peak']:.3f}@{g['peak_step']}"
        last = "—" if g["last"] is None else f"{g['last']:.3f}"
        step = "—" if r["alarm_step"] is None else str(r["alarm_step"])
        lag = "—" if r["steps_after_gold_peak"] is None else f"{r['steps_after_gold_peak']:+d}"
        rows.append(f"{r['run'][-40:]:<40} {peak:>14} {last:>6} {str(g['falls']):>5} "
                    f"{step:>6} {lag:>7}  {', '.join(r['alarm_signals']) or '—'}")
    s = result["summary"]
    rows.append(f"gold falls (> {result['gold_drop']:g} below its peak at the end) in "
                f"{s['gold_falls']} of {s['runs']} runs; the alarm fired in {s['detected']} of "
                f"them, steps after the gold peak: {s['steps_after_gold_peak']}; false alarms "
                f"on {s['false_alarms']} of {s['gold_steady']} runs whose gold did not fall"
                + (f"; {s['too_short']} runs too short to fire (at most {PATIENCE} eval points)"
                   if s.get("too_short") else ""))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlxf.audit.alarm_lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (sweep members too)")
    ap.add_argument("--gold-drop", type=float, default=GOLD_DROP)
    ap.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    missing = [str(d) for d in args.runs if not (d / "ledger.jsonl").exists()]
    if missing:
        print(f"not a run directory (no ledger.jsonl): {', '.join(missing)}", file=sys.stderr)
        return 2
    result = validate(args.runs, args.gold_drop)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
