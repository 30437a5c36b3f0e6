"""DPO and the lab's GRPO through accelerate: two CPU processes (gloo), each with half of every
global batch, take the same steps as one process with the whole batch."""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def test_two_processes_take_the_same_steps_as_one(dist_jobs):
    # tests/dpo_worker.py run alone and under `accelerate launch` (tests/dist_launch.py)
    one, two = (torch.load(dist_jobs / n / "dpo_worker.pt") for n in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 4
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) < 1e-6
    # float32 all-reduce sums in another order; Adam divides by sqrt(v), which magnifies that
    # round-off for near-zero gradients: 4 steps of lr 1e-2 stay within 1e-5 (3e-6 measured)
    assert (one["params"] - two["params"]).abs().max() < 1e-5
    # and training did move the parameters, so the comparison is not between two copies of init
    sys.path.insert(0, str(HERE))
    from dpo_worker import model
    init = torch.cat([p.detach().flatten() for p in model().parameters()])
    assert (one["params"] - init).abs().max() > 1e-3


def test_lab_grpo_on_two_processes_takes_one_process_steps(dist_jobs):
    # tests/group_rl_worker.py alone and under `accelerate launch` with grad_accum 2: each
    # prompt's group is sampled from its own seed, so the halves draw what one process draws
    one, two = (torch.load(dist_jobs / n / "group_rl_worker.pt") for n in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["params"].dtype == torch.float64
    sys.path.insert(0, str(HERE))
    from group_rl_worker import model
    init = torch.cat([p.detach().flatten() for p in model().parameters()])
    assert (one["params"] - init).abs().max() > 1e-3  # trained
    assert (one["params"] - two["params"]).abs().max() < 1e-6
