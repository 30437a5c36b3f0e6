"""Where the GRPO-from-files row's CPU time goes: the row's own rlxf run (bench/rlxf_side.py:
run_grpo_files, i.e. `rlxf grpo` on the 1m model, 4 prompts x G=8, 32 new tokens, one thread)
with process-CPU-time counters around each phase of tune/rl.py's step:

    PYTHONPATH=src python bench/grpo_files_phases.py [--model 1m] [--steps 15]

Prints CPU milliseconds per step (over every step, warm-up included) for sampling, the reward
sources, the reference log-probs, the training forward, the loss, the backward and the
optimizer update, beside the engine's whole step; what the step spends outside them is glue.
A measurement aid: the counters wrap functions, they change nothing the run computes."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import rlxf_side  # noqa: E402
from bench.workload import build  # noqa: E402


def count(owner, name: str, key: str, spent: dict) -> None:
    """Wrap owner.name so that its process CPU time adds up in spent[key]."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.process_time() - start
    setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="1m")
    ap.add_argument("--steps", type=int, default=15)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import accelerate

    import rlxf.models.rollout_backend as backend
    import rlxf.train.engine as engine
    import rlxf.tune.rl as rl
    import rlxf.tune.rl_session as session
    spent: dict = {}
    for owner, name, key in ((backend.TransformersBackend, "sample", "sampling"),
                             (session.RLSession, "score", "reward sources"),
                             (session.RLSession, "ref_logprobs", "reference log-probs"),
                             (rl, "_forward", "training forward"),
                             (rl, "group_policy_loss", "loss"),
                             (accelerate.Accelerator, "backward", "backward"),
                             (engine.Engine, "_update", "optimizer update"),
                             (engine.Engine, "_step", "engine step (all of the above)")):
        count(owner, name, key, spent)
    w = build(args.model, 512, 24, 32, 0)
    # run_grpo_files runs one step more than asked (the final checkpoint's, untimed there)
    rlxf_side.run_grpo_files(w, args.steps, 4, 8, 32, 1e-5, 3, 0, 0.04)
    steps = args.steps + 1
    whole = spent["engine step (all of the above)"]
    for key, seconds in spent.items():
        print(f"{key:32s} {seconds / steps * 1e3:8.1f} ms/step  {seconds / whole:6.1%}")
    return spent


if __name__ == "__main__":
    main()
