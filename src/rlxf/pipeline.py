"""`rlxf run`: the stages in order, each skipped when its outputs are complete and its inputs
unchanged, each resumed from its checkpoint when it was interrupted."""

from __future__ import annotations

import functools
import importlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .config import RunConfig
from .rundir import RunDir, atomic_write_text, sha256_json
from .versions import versions

if TYPE_CHECKING:
    from .stages.context import ProgressFactory, StageContext


def _no_files(config: RunConfig) -> dict:
    return {}


@functools.lru_cache(maxsize=4)
def _validated_records(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a feedback file whose every record is valid; cached per file version, since
    preflight and the fingerprint both ask and a large dataset takes seconds to validate."""
    from .feedback.record import read_records
    from .rundir import sha256_file
    records = read_records(path)  # a malformed file fails here, naming line and field
    if not any(r.type in ("pairwise", "ranking") for r in records):
        raise ValueError(f"{path}: no pairwise or ranking records (the reward model needs "
                         "preferences)")
    return sha256_file(Path(path))


def _feedback_files(config: RunConfig) -> dict:
    """The constitution is a file outside the run: its content belongs in the fingerprint, and
    it must load before any work starts."""
    if config.feedback.source == "human":
        path = Path(config.feedback.records)
        if not path.is_file():
            raise ValueError(f"[feedback] records = {str(path)!r}: no such file")
        stat = path.stat()
        return {"records_sha256": _validated_records(str(path), stat.st_mtime_ns, stat.st_size)}
    if config.feedback.source != "ai":
        return {}
    from .feedback.constitution import load_constitution
    from .rundir import hash_dir
    ai = config.feedback.ai
    files = {"constitution_sha256": load_constitution(ai.constitution).sha256}
    if ai.local_model:
        if not (Path(ai.local_model) / "config.json").exists():
            raise ValueError(f"[feedback.ai] local_model = {ai.local_model!r}: not a model "
                             "directory (no config.json)")
        files["local_model_sha256"] = hash_dir(Path(ai.local_model))
    return files


def _policy_files(config: RunConfig) -> dict:
    """Online RLAIF: the judge's constitution (by content) and settings decide the rewards, so
    they join the policy stage's fingerprint -- only when the policy is trained on them."""
    if config.policy.reward != "ai_judge":
        return {}
    from .feedback.constitution import load_constitution
    ai = config.feedback.ai
    return {"constitution_sha256": load_constitution(ai.constitution).sha256,
            "ai_judge": ai.model_dump(mode="json", exclude={"constitution", "workers"})}


def _lazy(module: str, function: str = "run") -> Callable[[StageContext], dict]:
    """rlxf.MODULE.FUNCTION, imported when the stage runs: the stages import torch and
    transformers (seconds of CPU), which a run whose stages are all up to date never needs (a
    finished run rerun, a --seeds member checked again)."""
    def run(ctx: StageContext) -> dict:
        return getattr(importlib.import_module(f".{module}", __package__), function)(ctx)
    run.__qualname__ = f"{module}.{function}"
    return run


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], dict]
    inputs: tuple[str, ...]  # stages whose outputs this one reads
    config: tuple[str, ...]  # config sections that change its result
    files: Callable[[RunConfig], dict] = _no_files  # hashes of outside files it reads
    # in a model world ([world] model): what runs instead (None: the stage does not run)
    model_run: Callable[[StageContext], dict] | None = None


def _world_files(config: RunConfig) -> dict:
    if not config.world.is_model:  # the lab world reads no outside file
        return {}
    from .model_world.world import world_files
    return world_files(config)


def _reward_files(config: RunConfig) -> dict:
    if not config.reward.model:  # no outside reward model to fingerprint
        return {}
    from .model_world.world import reward_files
    return reward_files(config)


STAGES = (
    Stage("world", _lazy("stages.world"), (), ("seed", "world"), _world_files,
          _lazy("model_world.world", "run_world")),
    Stage("pretrain", _lazy("stages.pretrain"), ("world",), ("seed", "pretrain")),
    Stage("sft", _lazy("stages.sft"), ("world", "pretrain"), ("seed", "sft")),
    Stage("feedback", _lazy("stages.feedback"), ("world", "sft"),
          ("seed", "feedback", "eval.max_new_tokens"), _feedback_files,
          _lazy("model_world.feedback")),
    Stage("reward", _lazy("stages.reward"), ("world", "sft", "feedback"), ("seed", "reward"),
          _reward_files, _lazy("model_world.reward")),
    Stage("policy", _lazy("stages.policy"), ("world", "sft", "feedback", "reward"),
          ("seed", "policy", "reward.heldout_fraction", "eval"), _policy_files,
          _lazy("model_world.policy")),
    Stage("eval", _lazy("stages.evaluate"), ("world", "pretrain", "sft", "reward", "policy"),
          ("seed", "eval", "feedback.annotators", "feedback.trigger_rate"), _no_files,
          _lazy("model_world.eval")),
    Stage("process", _lazy("stages.process"), ("world",), ("seed", "process")),
    Stage("finetune", _lazy("stages.finetune"), ("world", "sft", "reward", "policy", "eval"),
          ("seed", "finetune", "eval")),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
MODEL_WORLD_STAGES = tuple(s.name for s in STAGES if s.model_run is not None)
MODEL_WORLD_NOT_RUN = {"pretrain": " (\\[world] model is pretrained)",
                       "sft": " (\\[world] model is the SFT model; the world stage records it)"}


def _config_slice(config: RunConfig, keys: tuple[str, ...]) -> dict:
    data = config.model_dump(mode="json")
    out = {}
    for key in keys:
        value = data
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


def fingerprint(stage: Stage, config: RunConfig, run: RunDir) -> tuple[str, dict, dict]:
    cfg = _config_slice(config, stage.config)
    ran = MODEL_WORLD_STAGES if config.world.is_model else STAGE_NAMES
    inputs = {name: run.output_hash(name) for name in stage.inputs if name in ran}
    files = stage.files(config)
    return (sha256_json({"stage": stage.name, "config": cfg, "inputs": inputs, "files": files}),
            {**cfg, **files}, inputs)


def preflight(config: RunConfig) -> None:
    """Load every outside file a stage will read, so a bad one fails before any work."""
    for stage in STAGES:
        stage.files(config)


def run_pipeline(config: RunConfig, config_text: str, out: Path, progress: ProgressFactory,
                 log: Callable[[str], None], until: str | None = None,
                 reuse: Path | None = None, threads: int | None = None) -> RunDir:
    """`reuse`: another run directory whose completed stages are copied instead of recomputed
    wherever their fingerprint is this run's (same config slice, same inputs). `threads`: torch
    threads, set before the first stage that runs (torch is not loaded when none does)."""
    preflight(config)
    run = RunDir(out)
    source = RunDir(reuse) if reuse is not None and Path(reuse).resolve() != run.root.resolve() \
        else None
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.root / "config.toml", config_text)
    for stage in STAGES:
        runner = stage.model_run if config.world.is_model else stage.run
        if runner is None:
            log(f"[dim]{stage.name:<9} not run in a model world"
                f"{MODEL_WORLD_NOT_RUN.get(stage.name, '')}[/dim]")
            if stage.name == until:
                break
            continue
        fp, cfg, inputs = fingerprint(stage, config, run)
        if run.is_complete(stage.name, fp):
            run.ensure_ledgered(stage.name)
            log(f"[dim]{stage.name:<9} up to date, skipped[/dim]")
        elif source is not None and source.is_complete(stage.name, fp):
            run.adopt(stage.name, source)
            log(f"[dim]{stage.name:<9} same as in {source.root}, copied[/dim]")
        else:
            partial, ckpt = run.begin(stage.name, fp)
            from .stages.context import StageContext
            if threads:
                import torch
                torch.set_num_threads(threads)
                threads = None
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            t0 = time.perf_counter()
            result = runner(StageContext(run=run, config=config, out=partial, ckpt=ckpt,
                                         progress=progress))
            wall = time.perf_counter() - t0
            run.commit(stage.name, {
                "stage": stage.name, "fingerprint": fp, "config": cfg, "inputs": inputs,
                "counts": result.get("counts", {}), "metrics": result.get("metrics", {}),
                "started": started, "wall_s": round(wall, 3), "versions": versions()})
            log(f"{stage.name:<9} done in {wall:6.1f} s")
        if stage.name == until:
            break
    return run
