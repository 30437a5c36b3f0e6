"""A lab run's prompts as a prompt file (the JSONL `rlxf grpo|rloo|ppo|eval` read): one row per
prompt of the split, in the run's order, `{"prompt": text, "prompt_id", "family"}`. The
`prompt_id` lets `gold:RUN` judge each row with the world's gold judge (rewards/judges.py), so
the lab's held-out prompts can be measured through the real-model path (issue 16, item 5)."""

from __future__ import annotations

from pathlib import Path

from ..rundir import RunDir, read_jsonl, write_jsonl

SPLITS = ("heldout", "train")


def export_prompts(run_dir: Path, out: Path, split: str = "heldout") -> int:
    """Rows written; ValueError when `run_dir` has no finished `world` stage."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    world = RunDir(run_dir).stage_dir("world")
    if not (world / "world.json").exists():
        raise ValueError(f"{run_dir}: not a lab run directory (no world/world.json; "
                         "`rlxf run` writes one)")
    # the world stage's own file (stages/world.py), read as the lab's load_world reads it
    prompts = [r["prompt"] for r in read_jsonl(world / "prompts.jsonl") if r["split"] == split]
    return write_jsonl(out, [{"prompt": p["text"], "prompt_id": p["id"], "family": p["family"]}
                             for p in prompts])
