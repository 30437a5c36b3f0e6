"""The record (rlxf_training.json) and model card (README.md) of `rlxf grpo|rloo|ppo`: base
model, prompt file, reward sources and weights, options, PPO's value head, and the held-out eval
points at the start and the end (OUT/history.json has every point)."""

from __future__ import annotations

import json
from pathlib import Path

from ..rundir import atomic_write_text
from .run_record import run_record, write_run_record
from .rl_eval import heldout_change


def write_rl_record(directory: Path, name: str, command: str, base: Path, cfg, data: dict,
                    rewards: list[dict], metrics: dict, history: list[dict], saved: str,
                    chat_kind: str, backend: str, started: float, output,
                    value_head: dict | None = None) -> dict:
    """The run's ledger record and rlxf_training.json (tune/run_record.py), and the card."""
    from ..model_card import METHOD, front_matter, markdown_table

    record = run_record(command, base, cfg, {**data, "format": "prompts"}, metrics, saved,
                        chat_kind, started, output, history=history, rewards=rewards,
                        backend=backend, value_head=value_head)
    record["heldout_change"] = heldout_change(history[0], history[-1]) if history else None
    record = write_run_record(directory, record)
    meta = {"base_model": str(base.resolve()),
            "library_name": "peft" if saved == "adapter" else "transformers",
            "tags": ["rlxf", command, *(["lora"] if cfg.lora else [])],
            "pipeline_tag": "text-generation"}
    keys = sorted({k for point in history for k, v in point.items()
                   if k != "step" and not isinstance(v, list)})
    lines = [f"# {name}", "",
             f"`rlxf {command}`: {METHOD[command]}, from `{base}` on the prompts of "
             f"`{data['file']}` (sha256 {data['sha256'][:12]}...). Saved: {saved}; chat format: "
             f"{chat_kind}; rollouts: {backend}.", "",
             *(value_head_lines(value_head) if value_head else []),
             "## Rewards", "", *markdown_table(["source", "kind", "weight"],
                                       [[r["name"], r["kind"], r["weight"]] for r in rewards]),
             "## Data", "", *markdown_table(["count", "value"], [[k, v] for k, v in data.items()
                                                          if k not in ("file", "sha256")]),
             "## Options", "", *markdown_table(["option", "value"],
                                       [[k, json.dumps(v)] for k, v in record["config"].items()]),
             f"## Held-out prompts ({data['heldout']}; every point in history.json)", "",
             *(markdown_table(["metric", "first", "last"],
                      [[k, history[0].get(k), history[-1].get(k)] for k in ["step"] + keys])
               if history and data["heldout"] else ["No prompts were held out.", ""]),
             "The held-out reward is the reward the policy was trained on: it shows the "
             "optimisation worked, not that the model is better; the lab world (`rlxf run`) is "
             "where rlxf measures that against a known gold judge.", ""]
    atomic_write_text(directory / "README.md", front_matter(meta) + "\n" + "\n".join(lines))
    return record


def value_head_lines(head: dict) -> list[str]:
    """The card's paragraph on `rlxf ppo`'s value_head.safetensors (tune/value_head.py)."""
    init = head["initialised_from"]
    start = ("zeros" if init == "zeros" else
             f"`{init['file']}` (sha256 {init['sha256'][:12]}...)")
    return ["## Value head", "",
            f"`{head['file']}`: the PPO critic, a {head['module']} (tensors `weight` "
            f"{head['tensors']['weight']} and `bias` {head['tensors']['bias']}, "
            f"{head['dtype']}), trained with the policy; initialised from {start}. "
            f"{head['reads']}. Continue PPO from it with "
            "`rlxf ppo ... --value-head DIR`.", ""]
