"""bench/gpu_check.py end to end on the CPU (`--tiny`: a 2-layer Llama, 2 steps per task and
side): every task runs on both sides in bf16 on the same batches, so their first-step losses
agree, and the JSON holds what the GPU run will report."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import gpu_check  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    returned = gpu_check.main(["--tiny", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["tasks"].keys() == returned["tasks"].keys()
    return written


def test_sft_reward_dpo_run_on_both_sides_with_the_same_first_loss(record):
    assert record["model"]["architecture"] == "llama" and record["model"]["shape"] == "tiny"
    assert record["skipped"] == {}
    for task in ("sft", "reward", "dpo"):
        r = record["tasks"][task]
        for side in ("rlxf", "trl"):
            assert "error" not in r[side], (task, side, r[side].get("traceback"))
            assert r[side]["tokens_per_s"] > 0 and r[side]["steps"] == 2
            assert r[side]["peak_gpu_memory_gib"] is None  # no GPU here: not guessed
        # Same weights, same first batch, both in bf16 autocast: the same loss to bf16 noise.
        assert r["rlxf"]["first_loss"] == pytest.approx(r["trl"]["first_loss"], rel=2e-3)
        assert r["ratio_rlxf_vs_trl"] == pytest.approx(
            r["rlxf"]["tokens_per_s"] / r["trl"]["tokens_per_s"], rel=1e-2)
    # DPO's policy is its reference at the first step: log 2 (Rafailov et al.)
    assert record["tasks"]["dpo"]["trl"]["first_loss"] == pytest.approx(math.log(2), abs=1e-3)
    # tokens per step: batch 2 x (prompt 8 + completion 8), pairs twice that
    assert record["tasks"]["sft"]["rlxf"]["tokens_per_step"] == 32
    assert record["tasks"]["dpo"]["rlxf"]["tokens_per_step"] == 64


def test_grpo_trl_side_runs(record):
    trl = record["tasks"]["grpo"]["trl"]
    assert "error" not in trl, trl.get("traceback")
    # On-policy first step with group-normalised advantages (mean 0) and KL 0: loss 0.
    assert trl["first_loss"] == pytest.approx(0.0, abs=1e-6)
    # 2 prompts x group 2, prompts of 8 tokens, completions of at most 8
    assert 2 * 2 * 8 < trl["tokens_per_step"] <= 2 * 2 * 16


def test_grpo_rlxf_side_runs_in_bf16(record):
    rlxf = record["tasks"]["grpo"]["rlxf"]
    assert "error" not in rlxf, rlxf["error"]


def test_without_a_gpu_the_full_check_refuses_and_says_why():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full check would run")
    with pytest.raises(SystemExit, match="--tiny"):
        gpu_check.main([])
