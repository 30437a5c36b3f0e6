"""`rlxf grpo|rloo --grad-accum 2` in float64 takes the steps of one batch (1e-10): the groups stay
whole inside a micro-batch, every prompt samples from its own seed (models/group_sampling.py),
and the batch-level statistics -- DAPO's token count, the REINFORCE++ batch std (with the KL in
RLOO's reward), the rows dynamic sampling keeps -- are the whole batch's (tune/rl.py). The
first step's first micro-batch loses every group to dynamic sampling (tests/dist_launch.py's
flat prompts). The same inputs run under two processes in tests/test_tune_distributed.py."""

import json

import pytest
import torch
from dist_launch import RL_OPTIONS, make_inputs, rl_argv
from safetensors.torch import load_file
from typer.testing import CliRunner

from rlxf.cli import app


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("rl-micro"))


def run(root, command: str, name: str, grad_accum: int, options: list[str]) -> dict:
    torch.set_num_threads(1)
    out = root / f"{name}-{grad_accum}"
    result = CliRunner().invoke(app, rl_argv(root, command, out, grad_accum, options))
    assert result.exit_code == 0, result.output
    return load_file(out / "model.safetensors")


CASES = {
    "grpo-batch-dapo": ("grpo", RL_OPTIONS["grpo"]),
    "grpo-sequence-mean": ("grpo", ["--loss-type", "grpo", "--importance-level", "sequence",
                                    "--dynamic-sampling", "--beta", "0.04"]),
    "grpo-dr": ("grpo", ["--loss-type", "dr_grpo", "--scale-rewards", "none"]),
    "rloo-batch": ("rloo", RL_OPTIONS["rloo"]),
    "rloo-loo": ("rloo", ["--beta", "0.04"]),
}


@pytest.mark.parametrize("case", CASES)
def test_two_micro_batches_take_the_step_of_one_batch(root, case):
    command, options = CASES[case]
    whole = run(root, command, case, 1, options)
    micro = run(root, command, case, 2, options)
    init = load_file(root / "model" / "model.safetensors")
    assert next(iter(whole.values())).dtype == torch.float64
    assert max((whole[k] - init[k]).abs().max().item() for k in whole) > 1e-3  # it trained
    assert max((whole[k] - micro[k]).abs().max().item() for k in whole) < 1e-10
    record = json.loads((root / f"{case}-2" / "rlxf_training.json").read_text())
    assert record["config"]["grad_accum"] == 2
    if "--dynamic-sampling" in options:  # the flat prompts' groups were dropped
        assert record["metrics"]["groups/kept"] < 1


def test_a_batch_that_does_not_split_into_micro_batches_stops_before_any_work(root):
    out = root / "uneven"
    result = CliRunner().invoke(app, rl_argv(root, "grpo", out, grad_accum=3))
    assert result.exit_code == 1
    assert "batch_size 4 (prompts) does not split into 1 process(es) x grad_accum 3: make it a " \
           "multiple of 3" in " ".join(result.output.split())
    assert not out.exists() and not out.with_name("uneven.partial").exists()
