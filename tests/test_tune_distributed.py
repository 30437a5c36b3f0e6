"""`rlxf sft|reward|dpo` as one job under `accelerate launch` with two CPU processes (gloo): the
data is sharded, only the main process writes (OUT appears once, no OUT.partial is left), and
in float64 the saved parameters equal one process's on the same global batch -- here with
--grad-accum 2 on the two processes, so 2 x 2 micro-batches take the step of one batch of 8.
A two-process job killed with SIGKILL after a checkpoint and rerun ends where the
uninterrupted job does. `rlxf grpo|rloo` the same way, with the batch-level statistics on
(DAPO's token count, the batch std, dynamic sampling dropping every group of one process at the
first step): 2 processes x 2 micro-batches of whole groups take one process's steps. The jobs
run once per session (tests/dist_launch.py: one launch runs the commands in turn in the same
two processes)."""

import json

import pytest
import torch
from dist_launch import logs
from safetensors.torch import load_file


def weights(out) -> dict:
    return load_file(out / "model.safetensors")


def assert_same(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= tol, worst


@pytest.mark.parametrize("recipe", ["sft", "reward", "dpo"])
def test_two_processes_are_one_job_with_one_process_parameters(dist_jobs, recipe):
    one, two = dist_jobs / "one" / recipe, dist_jobs / "two" / recipe
    assert logs(two.parent, recipe).count(f"{recipe}: model -> ") == 1  # one job, one report
    assert not two.with_name(two.name + ".partial").exists() and not (two / ".ckpt").exists()
    record = json.loads((two / "rlxf_training.json").read_text())
    assert record["config"]["grad_accum"] == 2 and record["metrics"]["steps"] == 12
    a, b = weights(one), weights(two)
    assert next(iter(a.values())).dtype == torch.float64
    init = load_file(dist_jobs / "model" / "model.safetensors")
    assert max((a[k] - init[k]).abs().max().item() for k in init if k in a) > 1e-3  # trained
    assert_same(a, b)


def test_a_killed_two_process_job_resumes_to_the_same_parameters(dist_jobs):
    # killed after its first checkpoint, then rerun (tests/dist_launch.py)
    straight, killed = dist_jobs / "two" / "sft", dist_jobs / "killed"
    record = json.loads((killed / "rlxf_training.json").read_text())
    assert record["metrics"]["resumed_from_step"] > 0
    assert_same(weights(straight), weights(killed), tol=0.0)


@pytest.mark.parametrize("command", ["grpo", "rloo"])
def test_group_rl_under_two_processes_is_one_job_with_one_process_parameters(dist_jobs,
                                                                             command):
    one, two = dist_jobs / "one" / command, dist_jobs / "two" / command
    assert logs(two.parent, command).count(f"{command}: model -> ") == 1  # one report
    assert not two.with_name(two.name + ".partial").exists() and not (two / ".ckpt").exists()
    record = json.loads((two / "rlxf_training.json").read_text())
    assert record["config"]["grad_accum"] == 2 and record["metrics"]["steps"] == 3
    assert record["metrics"]["groups/kept"] < 1  # dynamic sampling dropped the flat groups
    # one writer: as many TensorBoard event files as the one-process job wrote
    assert len(list((two / "tb").rglob("events.out.*"))) == \
        len(list((one / "tb").rglob("events.out.*"))) == 1
    a, b = weights(one), weights(two)
    assert next(iter(a.values())).dtype == torch.float64
    init = load_file(dist_jobs / "model" / "model.safetensors")
    assert max((a[k] - init[k]).abs().max().item() for k in init if k in a) > 1e-3  # trained
    assert_same(a, b)
    # the held-out eval points (main process) are the same too
    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (one, two))
    assert [h["step"] for h in h1] == [h["step"] for h in h2] == [0, 2, 3]
    for x, y in zip(h1, h2):
        assert x["reward/mean"] == pytest.approx(y["reward/mean"], abs=1e-6)
