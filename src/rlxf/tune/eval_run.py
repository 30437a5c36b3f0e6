"""`rlxf eval`: load a policy and its reference (any local Hugging Face causal LMs, wherever they
were trained), the prompt file and the reward / gold sources; check them all before writing
anything; measure (eval/policy_vs_reference.py); write RUN as a run directory:
RUN/ledger.jsonl with one `eval` record (resolved options, input hashes, counts, versions, wall
time, headline metrics) and RUN/eval/ (metrics.json, samples.jsonl, probes.json), sealed by
rundir.py's atomic rename. `rlxf audit RUN` reads it (audit/real_eval.py)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..eval.gold_steps import measure_steps
from ..eval.metrics_contract import EvalMetrics
from ..eval.policy_vs_reference import EvalOptions, evaluate
from ..rundir import RunDir, atomic_write_json, sha256_file, sha256_json, write_jsonl
from .common import TuneError, check_model_dir, load_model_tokenizer
from .prompts import load_prompts
from .rl_session import _spec_fingerprint

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def model_hashes(path: Path) -> dict:
    """What identifies a model directory: its config.json and its weight files, hashed."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    return {"path": str(path.resolve()), "config": sha256_file(path / "config.json"),
            "weights": h.hexdigest()}


def _load(path: Path, device: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(path.resolve(), dtype=getattr(torch, dtype))
    return model.to(device).eval().requires_grad_(False)


def _same_tokenizer(a, b, policy: Path, reference: Path) -> None:
    """KL needs both models' probabilities of the same token sequence."""
    if a.get_vocab() != b.get_vocab():
        raise TuneError(f"{policy} and {reference}: their tokenizers differ; KL(policy ‖ "
                        "reference) compares the same token sequences, so both need one "
                        "tokenizer")


def run_eval(policy: Path, reference: Path, prompts: Path, out: Path, *, rewards: list[str],
             reward_weights: str | None, gold: str | None, options: EvalOptions,
             gold_steps: Path | None = None,
             device: str = "cpu", precision: str = "fp32",
             progress: Callable[[str], None] | None = None) -> dict:
    from ..versions import versions
    from ..rewards.combine import RewardSources
    from ..train.engine import resolve_device, resolve_precision

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if out.exists() and any(out.iterdir()):
        raise TuneError(f"{out}: already exists and is not empty (choose another --out)")
    for d in (policy, reference):
        check_model_dir(d)
    rows = load_prompts(prompts)
    sources = RewardSources(rewards, reward_weights) if rewards else None
    gold_source = RewardSources([gold]) if gold else None
    step_judge = _step_judge(gold_steps) if gold_steps else None
    tok = load_model_tokenizer(policy)
    _same_tokenizer(tok, load_model_tokenizer(reference), policy, reference)
    device = resolve_device(device)
    dtype = DTYPES[resolve_precision(precision, device)]
    policy_model = _load(policy, device, dtype)
    reference_model = policy_model if policy.resolve() == reference.resolve() else \
        _load(reference, device, dtype)
    try:
        result = evaluate(policy_model, reference_model, tok, rows, rewards=sources,
                          gold=gold_source, options=options, progress=progress)
        steps = measure_steps(result.samples, *step_judge) if step_judge else None
    except ValueError as e:
        raise TuneError(f"{prompts}: {e}") from None
    config = {**asdict(options), "device": device, "precision": precision, "dtype": dtype,
              "rewards": rewards, "reward_weights": sources.weights if sources else None,
              "gold": gold, "gold_steps": str(gold_steps) if gold_steps else None}
    inputs = {"policy": model_hashes(policy), "reference": model_hashes(reference),
              "prompts": {"path": str(prompts.resolve()), "sha256": sha256_file(prompts)},
              "rewards": [_spec_fingerprint(s) for s in rewards],
              "gold": _spec_fingerprint(gold) if gold else None,
              "gold_steps": model_hashes(gold_steps / "process" / "prm") if gold_steps else None}
    run = RunDir(out)
    fingerprint = sha256_json({"stage": "eval", "config": config, "inputs": inputs})
    partial, _ = run.begin("eval", fingerprint)
    write_artifacts(partial, result)
    metrics = headline(result.metrics)
    if steps is not None:
        atomic_write_json(partial / "gold_steps.json", steps[0])
        write_jsonl(partial / "gold_steps.jsonl", steps[1])
        metrics.update(step_headline(steps[0]))
    record = run.commit("eval", {
        "stage": "eval", "fingerprint": fingerprint, "config": config, "inputs": inputs,
        "counts": result.counts, "metrics": metrics,
        "started": started, "wall_s": round(time.perf_counter() - t0, 3),
        "versions": versions()})
    for empty in (out / ".partial", out / ".ckpt"):  # a one-stage run keeps no scratch dirs
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return {**record, "out": str(out)}


def _step_judge(run: Path) -> tuple:
    """--gold-steps RUN: the lab run's world (its gold step judge) and process reward model."""
    from ..rewards.process_reward import ProcessRewardModel
    from ..world.saved import load_world
    if not (run / "world" / "world.json").exists():
        raise TuneError(f"--gold-steps {run}: not a lab run directory (no world/world.json)")
    return load_world(RunDir(run)).kb, ProcessRewardModel(run)


def step_headline(steps: dict) -> dict:
    return {f"gold_steps/{m}/{k}": iv["value"] for m, ms in steps["models"].items()
            for k, iv in ms.items()}


def write_artifacts(directory: Path, result) -> None:
    """RUN/eval/'s files, also a model world's eval stage's: metrics.json (checked against the
    contract the audit reads), samples.jsonl and probes.json."""
    EvalMetrics.model_validate(result.metrics)
    atomic_write_json(directory / "metrics.json", result.metrics)
    write_jsonl(directory / "samples.jsonl", result.samples)
    if result.probes is not None:
        atomic_write_json(directory / "probes.json", result.probes)


def headline(metrics: dict) -> dict:
    """The ledger's metrics: each model's values and the differences, flattened."""
    out = {f"{m}/{k}": iv["value"] for m, ms in metrics["models"].items() for k, iv in ms.items()}
    out.update({f"difference/{k}": iv["value"] for k, iv in metrics["difference"].items()})
    return out
