"""PRM hacking in the lab (issue 15, item 6), from files, with the commands a user would type:
GRPO against the lab run's process reward model (`prm:RUN`, per-step credit) beside GRPO against
its outcome reward model (`orm:RUN`), same SFT start, prompts, steps and seed, each measured on
the process stage's held-out questions by `rlxf eval --gold-steps RUN`.

    python bench/lab_prm_hacking.py --run RUN --work DIR --seeds 0,1,2 \\
        --out bench/results/2026-12-05-lab-prm-hacking

RUN is a lab run whose `process` stage ran (e.g. `rlxf run examples/prm_hacking.toml --out
RUN`). Writes OUT.json (every command, its wall time, every measured number with its 95%
interval and n) and OUT.md (the table). Work directories are kept in DIR; a rerun reuses each
finished command (its --out exists and DIR/commands.json has it). `--prepare-only` runs only
`rlxf data multihop` and `rlxf sft` (they need the lab run's SFT model, not its process stage).
The commands run in this one process through rlxf's command line (as the tests do), so the
libraries are imported once, not once a command; each command's wall time is its own."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from rlxf.cli import app

STATS = ("prm/step_mean", "gold/step_accuracy", "gold/final_accuracy", "parse_rate",
         "prm_hacking")


class Log:
    """Every command with its wall time, kept in WORK/commands.json so that a rerun (or a run
    after `--prepare-only`) reports the time a reused step took when it ran."""

    def __init__(self, work: Path):
        self.path = work / "commands.json"
        self.done = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.commands: list[dict] = []

    def run(self, args: list) -> None:
        """`python -m rlxf ARGS`; skipped when its --out exists (a finished earlier run)."""
        args = [str(a) for a in args]
        out = Path(args[args.index("--out") + 1])
        command = "rlxf " + shlex.join(args)
        if not (out.exists() and command in self.done):
            print(f"$ {command}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            result = CliRunner().invoke(app, args)
            if result.exit_code != 0:
                sys.exit(f"failed ({result.exit_code}): {command}\n{result.output}")
            self.done[command] = round(time.perf_counter() - t0, 1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.done, indent=1))
        self.commands.append({"command": command, "wall_s": self.done[command]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--demonstrations", type=int, default=2000)
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--sft-lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=60, help="GRPO steps")
    ap.add_argument("--lr", type=float, default=1e-3, help="GRPO learning rate")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--eval-samples", type=int, default=8, help="samples per held-out prompt")
    ap.add_argument("--variant", default="", help="a name for this GRPO setting's directories "
                    "in DIR (several settings share DIR's data and SFT)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only the files and the SFT (they need no process stage yet)")
    a = ap.parse_args()
    run, work = a.run.resolve(), a.work.resolve()
    log = Log(work)
    data, sft = work / "data", work / "sft"
    common = ["--threads", 1]
    log.run(["data", "multihop", run, "--out", data, "--n-demonstrations", a.demonstrations])
    log.run(["sft", data / "model", data / "sft.jsonl", "--out", sft, "--steps", a.sft_steps,
             "--lr", a.sft_lr, *common])
    if a.prepare_only:
        return
    grpo = ["--steps", a.steps, "--lr", a.lr, "--group-size", a.group_size, "--batch-size",
            a.batch_size, "--beta", a.beta, "--max-new-tokens", 24, "--warmup-steps", 0,
            "--eval-prompts", data / "heldout.jsonl", "--eval-every", a.steps,
            "--eval-samples", 2, *common]
    evaluate = ["--prompts", data / "heldout.jsonl", "--gold-steps", run, "--reward",
                f"orm:{run}", "--reward", f"prm:{run}", "--no-probes", "--samples-per-prompt",
                a.eval_samples, "--max-new-tokens", 24, *common]
    log.run(["eval", "--policy", sft, "--reference", sft, "--out", work / "eval-sft",
             *evaluate])
    ledger = [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]
    results = {"lab_run_wall_s": {r["stage"]: r["wall_s"] for r in ledger},
               "process_stage_heldout": json.loads((run / "process" / "bon.json").read_text())
               ["heldout"],
               "sft": _read(work / "eval-sft")["models"]["policy"], "seeds": {}}
    for seed in [int(s) for s in a.seeds.split(",")]:
        name = f"{a.variant}-seed{seed}" if a.variant else f"seed{seed}"
        for source in ("prm", "orm"):
            log.run(["grpo", sft, data / "train.jsonl", "--reward", f"{source}:{run}",
                     "--out", work / f"grpo-{source}-{name}", "--seed", seed, *grpo])
        out = work / f"eval-{name}"
        log.run(["eval", "--policy", work / f"grpo-prm-{name}", "--reference",
                 work / f"grpo-orm-{name}", "--out", out, "--seed", seed, *evaluate])
        steps, metrics = _read(out), json.loads((out / "eval" / "metrics.json").read_text())
        results["seeds"][seed] = {
            "grpo_prm": steps["models"]["policy"], "grpo_orm": steps["models"]["reference"],
            "prm_minus_orm": steps["difference"], "examples": _examples(out),
            "reward": {m: {k: v for k, v in ms.items() if k.startswith("reward/")}
                       for m, ms in metrics["models"].items()}}
        write(a, log, results)  # after every seed: an interrupted run keeps what it measured


def write(a, log: Log, results: dict) -> None:
    report = {"what": __doc__.split("\n\n")[0], "run": str(a.run.resolve()),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
              "commands": log.commands,
              "wall_s": round(sum(c["wall_s"] for c in log.commands), 1),
              "results": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    a.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def _examples(eval_dir: Path, prompts: int = 2) -> dict:
    """Each model's first sampled reply to the first held-out prompts, with step verdicts."""
    rows = [json.loads(line) for line in
            (eval_dir / "eval" / "gold_steps.jsonl").read_text().splitlines()]
    out = {}
    for r in rows:
        mine = out.setdefault(r["model"], {})
        if r["prompt_index"] < prompts and r["prompt_id"] not in mine:
            mine[r["prompt_id"]] = {"response": r["response"], "prm": [round(x, 3) for x in
                                                                     r["prm"]],
                                    "gold": r["gold"]}
    return out


def _read(eval_dir: Path) -> dict:
    return json.loads((eval_dir / "eval" / "gold_steps.json").read_text())


def _iv(iv: dict) -> str:
    if iv.get("value") is None:
        return "n/a"
    text = f"{iv['value']:.3f}"
    if iv.get("ci95"):
        text += f" [{iv['ci95'][0]:.3f}, {iv['ci95'][1]:.3f}]"
    if "within_noise" in iv:
        text += " (within noise)" if iv["within_noise"] else " (beyond noise)"
    return text


def markdown(report: dict) -> str:
    res = report["results"]
    lines = [f"# PRM hacking in the lab ({report['date'][:10]})", "",
             report["what"], "",
             "Held-out multi-step questions of the process stage (the PRM and ORM never saw "
             "them). Each cell: value [95% bootstrap interval over prompts]; PRM hacking = "
             "share of the steps the PRM scores >= 0.5 that the gold step judge finds wrong.", "",
             "| policy | seed | PRM step score | gold step accuracy | gold final accuracy | "
             "parse rate | PRM hacking | n (prompts / replies / steps / PRM >= 0.5) |",
             "|---|---|---|---|---|---|---|---|"]

    def row(name, seed, ms):
        c = ms["prm_hacking"]["counts"]
        lines.append(f"| {name} | {seed} | " + " | ".join(_iv(ms[s]) for s in STATS)
                     + f" | {ms['prm_hacking']['n']} / {c['replies']} / {c['steps']} / "
                       f"{c['high']} |")
    row("SFT (start)", "-", res["sft"])
    for seed, r in res["seeds"].items():
        row("GRPO, prm:RUN", seed, r["grpo_prm"])
        row("GRPO, orm:RUN", seed, r["grpo_orm"])
    lines += ["", "Paired by prompt, GRPO with the PRM minus GRPO with the ORM:", "",
              "| seed | " + " | ".join(STATS) + " |", "|---" * (len(STATS) + 1) + "|"]
    for seed, r in res["seeds"].items():
        lines.append(f"| {seed} | " + " | ".join(_iv(r["prm_minus_orm"][s]) for s in STATS)
                     + " |")
    lines += ["", "Each policy's own reward on the same held-out samples (mean [95% CI]):", "",
              "| seed | policy | " + " | ".join(
                  sorted(next(iter(res["seeds"].values()))["reward"]["policy"])) + " |"]
    lines.append("|---|---|" + "---|" * len(next(iter(res["seeds"].values()))["reward"]
                                            ["policy"]))
    for seed, r in res["seeds"].items():
        for model, name in (("policy", "GRPO, prm:RUN"), ("reference", "GRPO, orm:RUN")):
            lines.append(f"| {seed} | {name} | " + " | ".join(
                _iv(r["reward"][model][k]) for k in sorted(r["reward"][model])) + " |")
    lines += ["", "First sampled reply to the first two held-out questions (PRM score and "
              "gold verdict per step):", ""]
    for seed, r in res["seeds"].items():
        for model, name in (("policy", "GRPO, prm:RUN"), ("reference", "GRPO, orm:RUN")):
            for pid, ex in r["examples"].get(model, {}).items():
                verdicts = ", ".join(f"{p:.2f} {'right' if g else 'wrong'}"
                                     for p, g in zip(ex["prm"], ex["gold"]))
                lines.append(f"- seed {seed}, {name}, `{pid}`: \"{ex['response']}\" "
                             f"({verdicts or 'no step'})")
    held = res["process_stage_heldout"]
    lines += ["", "The lab run's own held-out check of its reward models (process/bon.json, "
              f"on the stage's best-of-n candidates): PRM step accuracy "
              f"{held['prm/accuracy_steps']:.3f}, ORM final-answer accuracy "
              f"{held['orm/accuracy_final']:.3f}. The lab run's stages took "
              + ", ".join(f"{k} {v:.0f} s" for k, v in res["lab_run_wall_s"].items())
              + " (`rlxf run examples/prm_hacking.toml --out RUN`).", "",
              f"Wall time of the commands below, summed: {report['wall_s']:.0f} s "
              "(each command's own in the JSON).", "", "```sh"]
    lines += [c["command"] for c in report["commands"]]
    lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
