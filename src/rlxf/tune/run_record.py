"""What a real-model command (`rlxf sft|reward|dpo|kto|grpo|rloo|ppo`) records about its run,
built once by `run_record` and written twice by `write_run_record`:

- OUT/ledger.jsonl: one line in rundir.py's ledger record format (stage = the command; resolved
  options, inputs with hashes, counts, the data's recorded facts, metrics, history, start
  time, wall time, library versions), so OUT is also a run directory `rlxf audit OUT` reads
  (rlxf.audit.real_run);
- OUT/rlxf_training.json: the same facts in the shape earlier rlxf wrote (`training_json`),
  which the CLI's summary, `rlxf serve` and tests read.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from ..rundir import RunDir, atomic_write_json, write_jsonl
from ..versions import versions

TRAINING_RECORD = "rlxf_training.json"
INPUT_KEYS = ("file", "sha256", "format")  # which file the data came from; the rest are counts
LIBRARIES = ("accelerate", "peft")
PRECISION_WORDS = {"no": "fp32"}  # accelerate's "no mixed precision": parameters and math fp32  # what the real-model commands run on besides torch


def run_record(command: str, base: Path, cfg, data: dict, metrics: dict, saved: str,
               chat_kind: str, started: float, output, *,
               data_facts: dict | None = None, history: list[dict] | None = None,
               rewards: list[dict] | None = None, backend: str | None = None,
               value_head: dict | None = None) -> dict:
    """The command's ledger record. `data`: the data file (file, sha256, format) and its
    counts; `data_facts`: what its rows were (training_data.Loaded.facts) or None; `history`:
    the held-out eval points of an RL command; `rewards`: its reward sources and weights;
    `value_head`: `rlxf ppo`'s saved critic (tune/value_head.py `describe`);
    `output`: the command's tune.common.Output (its fingerprint, and the engine that resolved
    the device, the precision and the processes)."""
    accelerator = output.engine.accelerator
    return {
        "stage": command, "fingerprint": output.fingerprint,
        "config": cfg.model_dump(mode="json"),
        "resolved": {"device": accelerator.device.type, "precision": PRECISION_WORDS.get(
                         accelerator.mixed_precision, accelerator.mixed_precision),
                     "processes": accelerator.num_processes},
        "inputs": {"base_model": str(Path(base).resolve()),
                   "data": {k: data.get(k) for k in INPUT_KEYS},
                   **({"rewards": rewards} if rewards is not None else {})},
        "counts": {k: v for k, v in data.items() if k not in INPUT_KEYS},
        "data_facts": data_facts,
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
        "history": history or [],
        "output": {"saved": saved, "chat_format": chat_kind,
                   **({"rollout_backend": backend} if backend else {}),
                   **({"value_head": value_head} if value_head else {})},
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - started, 3),
        "versions": versions(LIBRARIES),
    }


def training_json(record: dict) -> dict:
    """rlxf_training.json: the ledger record in the shape earlier rlxf wrote."""
    inputs, out = record["inputs"], record["output"]
    data = {**{k: v for k, v in inputs["data"].items() if v is not None}, **record["counts"]}
    legacy = {"command": record["stage"], "base_model": inputs["base_model"],
              "saved": out["saved"], "chat_format": out["chat_format"],
              "config": record["config"], "data": data, "metrics": record["metrics"],
              "wall_s": record["wall_s"]}
    if "rewards" in inputs:  # the RL commands
        history = record["history"]
        legacy.update({"rollout_backend": out.get("rollout_backend"),
                       "rewards": inputs["rewards"],
                       "eval": {"first": history[0] if history else None,
                                "last": history[-1] if history else None},
                       "heldout_change": record.get("heldout_change")})
    if "value_head" in out:  # rlxf ppo
        legacy["value_head"] = out["value_head"]
    return legacy


def write_run_record(directory: Path, record: dict) -> dict:
    """OUT/ledger.jsonl and OUT/rlxf_training.json; returns the latter's content. OUT is one
    command's output, so its ledger is that one line, written whole (atomically): a rerun that
    resumes an OUT.partial/ whose last attempt died after this write cannot add a second."""
    write_jsonl(RunDir(directory).ledger_path, [record])
    legacy = training_json(record)
    atomic_write_json(directory / TRAINING_RECORD, legacy)
    return legacy
