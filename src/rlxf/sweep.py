"""`rlxf sweep`: the over-optimisation sweep. The whole pipeline runs once in RUN/ with the
config as given; then, for each value of `[sweep]`, a member run directory RUN/sweep/NAME=VALUE/
whose world, pretrain, sft, feedback and reward are symbolic links to RUN's (same fingerprints,
so they are skipped, never recomputed) runs its own policy stage. RUN/sweep/sweep.json lists
the members and their measured histories; the report of RUN fits Gao et al.'s forms to them."""

from __future__ import annotations

import json
import os
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
    raise ValueError("[sweep]: give kl_coef = [...] or bon_n = [...] to sweep over")


def _link_shared(root: Path, member: Path, stages: tuple[str, ...]) -> None:
    member.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        link = member / stage
        if not link.exists() and not link.is_symlink():
            os.symlink(os.path.relpath(root / stage, member), link, target_is_directory=True)


def run_sweep(config: RunConfig, config_text: str, out: Path, progress: ProgressFactory,
              log: Callable[[str], None], reuse: Path | None = None) -> Path:
    plan = members(config)  # a config without [sweep] values fails before any work
    run_pipeline(config, config_text, out, progress, log, reuse=reuse)
    parameter = "policy.ppo.kl_coef" if config.sweep.kl_coef else "policy.bon_n"
    rows = []
    for name, value, member_cfg in plan:
        member = out / SWEEP_DIR / name
        # The base run's policy is reused too when this member is the same policy.
        same_policy = member_cfg.policy == config.policy
        _link_shared(out, member, SHARED + (("policy",) if same_policy else ()))
        log(f"[bold]sweep member {name}[/bold]")
        text = f"# rlxf sweep member: {parameter} = {value} (overrides the config below)\n"
        run_pipeline(member_cfg, text + config_text, member, progress, log, until="policy")
        history = RunDir(member).stage_dir("policy") / "history.json"
        rows.append({"name": name, "value": value, "dir": f"{SWEEP_DIR}/{name}",
                     "history": json.loads(history.read_text())})
    atomic_write_json(out / SWEEP_DIR / SWEEP_FILE, {"parameter": parameter, "members": rows})
    return out / SWEEP_DIR / SWEEP_FILE
