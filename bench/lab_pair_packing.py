"""Reward-model and DPO steps (forward + backward) on a finished lab run's pairs, padded
(models/shared_prefix.py) against packed (train/pair_packing.py), alternating, CPU and wall
seconds per step.

    PYTHONPATH=src python bench/lab_pair_packing.py RUN [--threads 1] [--steps 10] [--repeats 3]"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import rlxf.train.dpo as dpo
import rlxf.train.reward as reward
from rlxf.feedback.record import read_records
from rlxf.models.fused_ops import fuse_activations
from rlxf.rundir import RunDir
from rlxf.stages.context import load_world
from rlxf.train.pair_packing import pack_for
from rlxf.train.reward_data import preference_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run)
    world = load_world(run)
    pad = world.tokenizer.pad_token_id
    records = read_records(run.stage_dir("feedback") / "feedback.jsonl")
    pairs = [p for _, p in preference_pairs(records, world.tokenizer, 0, 0.15)[0]]
    sft = run.stage_dir("sft") / "model"
    rm = AutoModelForSequenceClassification.from_pretrained(sft, num_labels=1)
    rm.config.pad_token_id = pad
    lm = AutoModelForCausalLM.from_pretrained(sft)
    fuse_activations(rm)
    fuse_activations(lm)
    rng = random.Random(0)
    batches = [rng.sample(pairs, args.batch) for _ in range(args.steps)]

    def steps(kind: str, packed: bool) -> tuple[float, float]:
        for module in (reward, dpo):
            module.pack_for = pack_for if packed else (lambda *a: None)
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            model = rm if kind == "rm" else lm
            c, r = (reward.pair_rewards if kind == "rm" else dpo.pair_logprobs)(model, b, pad)
            (c - r).mean().backward()
            model.zero_grad()
        return ((time.perf_counter() - t0) / len(batches),
                (time.process_time() - c0) / len(batches))

    for kind in ("rm", "dpo"):
        runs: dict[bool, list] = {False: [], True: []}
        for _ in range(args.repeats):
            for packed in (False, True):
                runs[packed].append(steps(kind, packed))
        for packed in (False, True):
            walls, cpus = zip(*runs[packed])
            print(f"{kind:3s} {'packed' if packed else 'padded'}: CPU s/step "
                  f"{' '.join(f'{c:.3f}' for c in cpus)}, wall {' '.join(f'{w:.3f}' for w in walls)}")


if __name__ == "__main__":
    main()
