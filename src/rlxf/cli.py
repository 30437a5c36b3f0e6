"""The command line: one typer app."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from . import quiet
from .console import console, progress_bars, progress_factory
from .data.cli import data_app
from .serve.cli import serve
from .server.cli import annotate_app
from .tune.cli import register as register_tune_commands
from .tune.eval_cli import eval_command
from .tune.rl_cli import register as register_rl_commands

# Keep the console for our own progress bars: third-party bars, advisories and warnings would
# interleave with them on every model load (rlxf/quiet.py).
quiet.quiet_environment()
os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="rlxf: RLHF / RLAIF that measures its own failure modes.")


@app.callback()
def _before_every_command() -> None:
    quiet.capture_warnings()


REUSE_HELP = ("copy each stage that RUN completed with the same fingerprint (config slice and "
              "inputs) instead of recomputing it; with --seeds, seed by seed")
RAY_HELP = ("run the seeds as Ray tasks: 'auto' (this machine's cluster), 'HOST:PORT' (as "
            "`ray start --head` prints it), 'ray://HOST:PORT', or 'local' (start one here); RUN "
            "must be on a filesystem every node sees; a cluster with token authentication needs "
            "RAY_AUTH_MODE=token for HOST:PORT and ray://")


@app.command()
def run(config: Path = typer.Argument(..., help="TOML config (see examples/quickstart.toml)"),
        out: Path = typer.Option(..., "--out", help="run directory (created; resumed if it exists)"),
        until: str = typer.Option(None, help="stop after this stage"),
        threads: int = typer.Option(0, help="torch threads (0: one per core; with several "
                                            "seeds: the cores shared out)"),
        seeds: int = typer.Option(None, "--seeds", min=1,
                                  help="training seeds (default: the config's `seeds`, 1): "
                                       "seed, seed+1, ... each a whole run, in parallel; the "
                                       "report pools them with 95% intervals"),
        jobs: int = typer.Option(0, help="seeds run at once (0: all)"),
        ray: str = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
        reuse: Path = typer.Option(None, "--reuse", metavar="RUN", help=REUSE_HELP),
        seed: int = typer.Option(None, "--seed", hidden=True,
                                 help="one member of --seeds: this seed instead of the config's"),
        report: bool = typer.Option(True, "--report/--no-report", hidden=True)) -> None:
    """Run the whole pipeline: world -> pretrain -> sft -> feedback -> reward -> policy -> eval
    -> audit. Finished stages are skipped; an interrupted stage resumes from its checkpoint.
    With --seeds N, the experiment once per seed (RUN and RUN/seeds/seed=K/), pooled."""
    from .config import load_config
    from .pipeline import STAGE_NAMES, preflight, run_pipeline
    cfg = _load(config, load_config, preflight)
    if until is not None and until not in STAGE_NAMES:
        console.print(f"[red]--until {until!r}: not a stage; stages: {', '.join(STAGE_NAMES)}")
        raise typer.Exit(2)
    _check_reuse(reuse)
    n = seeds or (1 if seed is not None else cfg.seeds)
    if n > 1 or ray:
        if until is not None:
            console.print("[red]--until runs one seed, here: leave out --seeds (or set seeds = "
                          "1) and --ray")
            raise typer.Exit(2)
        _run_seeds("run", config, out, cfg.seed, n, jobs, threads, ray, reuse)
        return
    from .seeds import as_member
    cfg, text = as_member(cfg, config.read_text(), seed)
    out.mkdir(parents=True, exist_ok=True)
    quiet.log_to(out)
    with progress_bars() as progress:
        rd = run_pipeline(cfg, text, out, progress_factory(progress),
                          progress.console.print, until, reuse,
                          threads=threads or os.cpu_count() or 1)
    if until is None and report:
        _write_report(rd.root)


def _check_reuse(reuse: Path | None) -> None:
    if reuse is not None and not (reuse / "ledger.jsonl").is_file():
        console.print(f"[red]--reuse {reuse}: not a run directory (no ledger.jsonl)",
                      highlight=False)
        raise typer.Exit(2)


def _load(config: Path, load_config, *checks):
    try:
        cfg = load_config(config)
        for check in checks:
            check(cfg)
    except ValueError as e:  # ConfigError, or an outside file (e.g. the constitution) is bad
        console.print("config error", style="red")
        console.print(str(e), markup=False, highlight=False)
        raise typer.Exit(2) from None
    return cfg


def _run_seeds(command: str, config: Path, out: Path, seed: int, n: int, jobs: int,
               threads: int, ray: str | None = None, reuse: Path | None = None) -> None:
    """Every seed a process of its own (rlxf.seeds), here or a Ray task, a progress bar each,
    then the pooled report of RUN."""
    from .pipeline import STAGE_NAMES
    from .seeds import LocalProcesses, RayTasks, default_jobs, run_seeds, stages_done
    all_at_once, per_job = default_jobs(n)
    jobs, threads = jobs or all_at_once, threads or per_job
    try:
        launcher = RayTasks(ray) if ray else LocalProcesses()
    except (RuntimeError, ConnectionError) as e:
        console.print(f"[red]--ray {ray}: {e}", highlight=False)
        raise typer.Exit(2) from None
    with progress_bars() as progress:
        bars = {}

        def poll(members):
            for m in members:
                if m.seed not in bars:
                    bars[m.seed] = progress.add_task(f"seed {m.seed}", total=len(STAGE_NAMES),
                                                     info="")
                done = stages_done(m)
                progress.update(bars[m.seed], completed=min(done, len(STAGE_NAMES)),
                                info=("done" if m.rc == 0 else f"failed (exit {m.rc})"
                                      if m.rc is not None else ""))
        try:
            members = run_seeds(command, config, out, seed, n, jobs, threads,
                                progress.console.print, poll, launcher, reuse)
        finally:
            launcher.close()
    failed = [m for m in members if m.rc != 0]
    if failed:
        console.print(f"[red]{len(failed)} of {n} seeds failed: "
                      + ", ".join(f"seed {m.seed} (log {m.log})" for m in failed))
        raise typer.Exit(1)
    console.print("seeds: " + ", ".join(f"{m.seed} {m.wall_s:.0f} s" for m in members))
    _write_report(out)


@app.command()
def sweep(config: Path = typer.Argument(..., help="TOML config with a \\[sweep] section"),
          out: Path = typer.Option(..., "--out", help="run directory (created; resumed if it "
                                                      "exists)"),
          threads: int = typer.Option(0, help="torch threads (0: one per core)"),
          seeds: int = typer.Option(None, "--seeds", min=1,
                                    help="training seeds (default: the config's `seeds`): the "
                                         "sweep once per seed, in parallel, pooled"),
          jobs: int = typer.Option(0, help="seeds run at once (0: all)"),
          ray: str = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
          reuse: Path = typer.Option(None, "--reuse", metavar="RUN", help=REUSE_HELP),
          seed: int = typer.Option(None, "--seed", hidden=True),
          report: bool = typer.Option(True, "--report/--no-report", hidden=True)) -> None:
    """Over-optimisation sweep: the whole pipeline once, then the policy stage once per \\[sweep]
    value (KL coefficients, best-of-n values or λ of the reward mean - λ·std) sharing every
    upstream stage; the report fits Gao et al.'s curves to gold and proxy against sqrt(KL) and
    gives each RL member's gold lost since its peak."""
    from .config import load_config
    from .pipeline import preflight
    from .sweep import members, run_sweep
    cfg = _load(config, load_config, preflight, members)
    _check_reuse(reuse)
    n = seeds or (1 if seed is not None else cfg.seeds)
    if n > 1 or ray:
        _run_seeds("sweep", config, out, cfg.seed, n, jobs, threads, ray, reuse)
        return
    from .seeds import as_member
    cfg, text = as_member(cfg, config.read_text(), seed)
    out.mkdir(parents=True, exist_ok=True)
    quiet.log_to(out)
    import torch
    torch.set_num_threads(threads or os.cpu_count() or 1)
    with progress_bars() as progress:
        path = run_sweep(cfg, text, out, progress_factory(progress), progress.console.print,
                         reuse, torch.get_num_threads())
    console.print(f"sweep: {path}")
    if report:
        _write_report(out)


def _write_report(run_dir: Path) -> None:
    from .audit.report import write_report
    paths = write_report(run_dir)
    console.print(f"report: {paths['html']}\n        {paths['md']}\n        {paths['json']}")


@app.command()
def audit(run_dir: Path = typer.Argument(..., help="a run directory written by `rlxf run`, or "
                                         "the OUT of `rlxf sft|reward|dpo|kto|grpo|rloo|ppo`")
          ) -> None:
    """Regenerate report/report.json, report.md and index.html from the run directory alone."""
    if not (run_dir / "ledger.jsonl").exists():
        console.print(f"[red]{run_dir}: not a run directory (no ledger.jsonl)")
        raise typer.Exit(2)
    _write_report(run_dir)


@app.command()
def compare(run_a: Path = typer.Argument(..., help="run A (the reference)"),
            run_b: Path = typer.Argument(..., help="run B (compared against A)"),
            out: Path = typer.Option(None, "--out",
                                     help="directory for the files (default: RUN_B/report)")) -> None:
    """The report of two runs side by side, differences highlighted: writes
    compare-<A name>.html, .md and .json."""
    for run_dir in (run_a, run_b):
        if not (run_dir / "ledger.jsonl").exists():
            console.print(f"[red]{run_dir}: not a run directory (no ledger.jsonl)")
            raise typer.Exit(2)
    from .audit.compare import write_comparison
    paths = write_comparison(run_a, run_b, out)
    console.print(f"compare: {paths['html']}\n         {paths['md']}\n         {paths['json']}")


app.add_typer(data_app, name="data")
app.add_typer(annotate_app, name="annotate")
register_tune_commands(app)  # sft, reward, dpo, merge on a local model directory
register_rl_commands(app)  # grpo, rloo from a prompt file and reward sources
app.command("eval")(eval_command)  # a policy against its reference, wherever trained
app.command()(serve)

if __name__ == "__main__":
    app()
