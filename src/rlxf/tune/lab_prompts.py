"""`rlxf lab-prompts RUN_DIR --split train|heldout --out FILE.jsonl`: a lab run's prompts as a
PROMPTS file for `rlxf grpo|rloo|ppo` (and `--eval-prompts`), so the real-model RL commands can
be checked in the lab world, where `--reward gold:RUN_DIR` knows the truth. Each row is
{"prompt": text, "prompt_id": id, "family": family}: the gold judge finds the prompt by its id,
and a reward function can read the family."""

from __future__ import annotations

import json
from pathlib import Path

from ..rundir import atomic_write_text
from .common import TuneError

SPLITS = ("train", "heldout")


def lab_prompt_rows(run_dir: Path, split: str) -> list[dict]:
    from ..rundir import RunDir
    from ..stages.context import load_world
    if split not in SPLITS:
        raise TuneError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if not (run_dir / "world" / "world.json").exists():
        raise TuneError(f"{run_dir}: not a lab run directory (no world/world.json; "
                        "`rlxf run` writes one)")
    world = load_world(RunDir(run_dir))
    return [{"prompt": p.text, "prompt_id": p.id, "family": p.family}
            for p in (world.train if split == "train" else world.heldout)]


def write_lab_prompts(run_dir: Path, split: str, out: Path) -> int:
    """Writes the split's rows to `out` (whole or not at all); returns how many."""
    rows = lab_prompt_rows(run_dir, split)
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)
