"""A model world (`[world] model`, `prompts`, `gold`): Gao et al.'s synthetic-gold experiment on
any local causal LM. Stage `world` here records the model directory, the gold SPEC and the
prompt file split into train and held-out (the split `rlxf grpo` makes: tune/prompts.py); the
model directory is the SFT model, so stages `pretrain` and `sft` do not run (pipeline.py).
The other stages of a model world: model_world/feedback.py, reward.py, policy.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..rundir import RunDir, atomic_write_json, hash_dir, sha256_file
from ..stages.context import StageContext

PROMPTS = "prompts.jsonl"   # in world/: the prompt file as given (its rows in order)
TRAIN, HELDOUT = "train.jsonl", "heldout.jsonl"  # in world/: the split, prompt-file rows


def world_meta(run: RunDir) -> dict:
    return json.loads((run.stage_dir("world") / "world.json").read_text())


def gold_fingerprint(spec: str) -> dict:
    """The gold's content joins the fingerprint: a reward-model directory by its files, a
    function file or judge file by its bytes."""
    target = Path(spec.split(":", 1)[1]) if spec.startswith(("gold:", "judge:")) else (
        Path(spec) if Path(spec).is_dir() else Path(spec.rpartition(":")[0]))
    if target.is_dir():
        return {"spec": spec, "sha256": hash_dir(target)}
    if target.is_file():
        return {"spec": spec, "sha256": sha256_file(target)}
    return {"spec": spec}


def world_files(config) -> dict:
    """Preflight and fingerprint of a model world's outside files: the model directory, the
    prompt file (every row checked) and the gold SPEC (loaded once, so a bad one fails before
    any work)."""
    if not config.world.is_model:
        return {}
    from ..rewards.combine import RewardSources
    from ..tune.common import check_model_dir
    from ..tune.prompts import load_prompts
    w = config.world
    model, prompts = Path(w.model), Path(w.prompts)
    try:
        check_model_dir(model)
    except ValueError as e:
        raise ValueError(f"[world] model = {w.model!r}: {e}") from None
    try:
        load_prompts(prompts)
    except ValueError as e:
        raise ValueError(f"[world] prompts: {e}") from None
    try:
        RewardSources([w.gold])
    except ValueError as e:
        raise ValueError(f"[world] gold: {e}") from None
    return {"model_sha256": hash_dir(model), "prompts_sha256": sha256_file(prompts),
            "gold": gold_fingerprint(w.gold)}


def reward_files(config) -> dict:
    """[reward] model, when a model world names one: checked, and its files fingerprinted."""
    if not config.reward.model:
        return {}
    from ..tune.common import check_model_dir
    try:
        check_model_dir(Path(config.reward.model))
    except ValueError as e:
        raise ValueError(f"[reward] model = {config.reward.model!r}: {e}") from None
    return {"reward_model_sha256": hash_dir(Path(config.reward.model))}


def run_world(ctx: StageContext) -> dict:
    from ..tune.prompts import load_prompts, split_heldout
    w = ctx.config.world
    source = Path(w.prompts)
    shutil.copyfile(source, ctx.out / PROMPTS)
    rows = load_prompts(ctx.out / PROMPTS)
    train, heldout = split_heldout(rows, w.heldout_fraction, ctx.seed)
    for name, part in ((TRAIN, train), (HELDOUT, heldout)):
        with open(ctx.out / name, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps({"prompt": r.prompt, **r.fields}, ensure_ascii=False) + "\n")
    atomic_write_json(ctx.out / "world.json", {
        "kind": "model", "model": str(Path(w.model).resolve()), "prompts": str(source),
        "prompts_sha256": sha256_file(source), "gold": w.gold,
        "heldout_fraction": w.heldout_fraction})
    return {"counts": {"prompts/train": len(train), "prompts/heldout": len(heldout)},
            "metrics": {"world": "model", "gold": w.gold,
                        "sft_model": {"path": str(Path(w.model).resolve()),
                                      "sha256": hash_dir(Path(w.model)),
                                      "note": "the [world] model plays SFT: no pretrain or "
                                              "sft stage ran"}}}


def sft_model(run: RunDir) -> Path:
    """The SFT model of a model world: the [world] model directory."""
    return Path(world_meta(run)["model"])
