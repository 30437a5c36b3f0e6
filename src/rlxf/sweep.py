"""`rlxf sweep`: the over-optimisation sweep. The whole pipeline runs once in RUN/ with the
config as given; then, for each value of `[sweep]`, a member run directory RUN/sweep/NAME=VALUE/
whose world, pretrain, sft, feedback and reward are symbolic links to RUN's (same fingerprints,
so they are skipped, never recomputed) runs its own policy stage. RUN/sweep/sweep.json lists
the members and their measured histories; the report of RUN fits Gao et al.'s forms to them.

The members are independent, so with T torch threads they run T at once, each a process of its
own on one thread, giving what each gives alone on one thread (tests/test_sweep_parallel.py);
with one thread, one after the other here, with progress bars."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from .config import RunConfig
from .pipeline import run_pipeline
from .rundir import RunDir, atomic_write_json
from .stages.context import ProgressFactory

SWEEP_DIR = "sweep"
SWEEP_FILE = "sweep.json"
SHARED = ("world", "pretrain", "sft", "feedback", "reward")


def members(config: RunConfig) -> list[tuple[str, float | int, RunConfig]]:
    """(name, value, member config) for every value of [sweep]."""
    sweep, policy = config.sweep, config.policy
    if sweep.kl_coef:
        return [(f"kl_coef={v:g}", v, config.model_copy(update={"policy": policy.model_copy(
            update={"algorithm": "ppo", "ppo": policy.ppo.model_copy(update={"kl_coef": v})})}))
            for v in sweep.kl_coef]
    if sweep.bon_n:
        return [(f"bon_n={n}", n, config.model_copy(update={"policy": policy.model_copy(
            update={"algorithm": "bon", "bon_n": n})})) for n in sweep.bon_n]
    if sweep.uncertainty_penalty:  # λ = 0 is the plain mean: the unpenalised control
        return [(f"uncertainty_penalty={v:g}", v, config.model_copy(update={
            "policy": policy.model_copy(update={"reward": "mean_minus_std",
                                                "uncertainty_penalty": v})}))
            for v in sweep.uncertainty_penalty]
    raise ValueError("[sweep]: give kl_coef = [...], bon_n = [...] or uncertainty_penalty = "
                     "[...] to sweep over")


def parameter(config: RunConfig) -> str:
    """The config key the sweep varies, as sweep.json names it."""
    sweep = config.sweep
    return ("policy.ppo.kl_coef" if sweep.kl_coef else "policy.bon_n" if sweep.bon_n
            else "policy.uncertainty_penalty")


def _link_shared(root: Path, member: Path, stages: tuple[str, ...]) -> None:
    member.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        link = member / stage
        if not link.exists() and not link.is_symlink():
            os.symlink(os.path.relpath(root / stage, member), link, target_is_directory=True)


def _no_progress(description: str, total: int):
    return lambda step, metrics: None


def _run_member(config_json: dict, text: str, member: str, threads: int) -> list[str]:
    """One member's pipeline in a process of its own; its log lines, for the parent to print."""
    import torch
    torch.set_num_threads(threads)
    lines: list[str] = []
    run_pipeline(RunConfig.model_validate(config_json), text, Path(member), _no_progress,
                 lines.append, until="policy")
    return lines


def run_sweep(config: RunConfig, config_text: str, out: Path, progress: ProgressFactory,
              log: Callable[[str], None], reuse: Path | None = None, threads: int = 1) -> Path:
    plan = members(config)  # a config without [sweep] values fails before any work
    run_pipeline(config, config_text, out, progress, log, reuse=reuse)
    varied = parameter(config)
    jobs = []
    for name, value, member_cfg in plan:
        member = out / SWEEP_DIR / name
        # The base run's policy is reused too when this member is the same policy.
        same_policy = member_cfg.policy == config.policy
        _link_shared(out, member, SHARED + (("policy",) if same_policy else ()))
        text = f"# rlxf sweep member: {varied} = {value} (overrides the config below)\n"
        jobs.append((name, member_cfg, text + config_text, member))
    at_once = min(threads, len(jobs))
    if at_once > 1:
        log(f"sweep: {len(jobs)} members, {at_once} at once (one process and thread each)")
        # spawn, not fork: the parent's torch threads must not be inherited half-initialised
        with ProcessPoolExecutor(at_once, mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = [ex.submit(_run_member, cfg.model_dump(mode="json"), text, str(member),
                                 max(1, threads // at_once)) for _, cfg, text, member in jobs]
            for (name, *_), future in zip(jobs, futures):
                lines = future.result()  # a failed member raises here, after the others ran
                log(f"[bold]sweep member {name}[/bold]")
                for line in lines:
                    log(line)
    else:
        for name, member_cfg, text, member in jobs:
            log(f"[bold]sweep member {name}[/bold]")
            run_pipeline(member_cfg, text, member, progress, log, until="policy")
    rows = []
    for name, value, _ in plan:
        member = out / SWEEP_DIR / name
        history = RunDir(member).stage_dir("policy") / "history.json"
        rows.append({"name": name, "value": value, "dir": f"{SWEEP_DIR}/{name}",
                     "history": json.loads(history.read_text())})
    atomic_write_json(out / SWEEP_DIR / SWEEP_FILE, {"parameter": varied, "members": rows})
    return out / SWEEP_DIR / SWEEP_FILE
