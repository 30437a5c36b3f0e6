"""Issue 16 item 5 on the tiny lab run: its held-out prompts exported as a prompt file
(`rlxf data prompts`), its policy measured against its SFT model by `rlxf eval` with the lab's
gold judge (`--gold gold:RUN`) at the lab eval's settings; gold utility and KL agree with the
lab eval's within their 95% intervals (audit/lab_crosscheck.py)."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from rlxf.audit.lab_crosscheck import crosscheck, lab_settings
from rlxf.cli import app
from rlxf.rundir import RunDir, read_jsonl
from rlxf.world.saved import load_world


def cli(*args):
    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(x) for x in args])


def test_rlxf_eval_agrees_with_the_lab_eval(tiny_run, tmp_path):
    prompts = tmp_path / "heldout.jsonl"
    result = cli("data", "prompts", tiny_run, "--out", prompts)
    assert result.exit_code == 0, result.output
    world = load_world(RunDir(tiny_run))
    rows = read_jsonl(prompts)
    assert [(r["prompt"], r["prompt_id"], r["family"]) for r in rows] == \
        [(p.text, p.id, p.family) for p in world.heldout]
    s = lab_settings(tiny_run)
    out = tmp_path / "eval"
    result = cli("eval", "--policy", tiny_run / "policy" / "model", "--reference",
                 tiny_run / "sft" / "model", "--prompts", prompts, "--gold", f"gold:{tiny_run}",
                 "--samples-per-prompt", s["samples_per_prompt"], "--temperature",
                 s["temperature"], "--max-new-tokens", s["max_new_tokens"], "--no-probes",
                 "--threads", 1, "--out", out)
    assert result.exit_code == 0, result.output
    check = crosscheck(tiny_run, out)
    assert check["settings"]["same"]
    for key in ("gold_utility", "kl"):
        assert check[key]["lab"]["n"] == check[key]["rlxf_eval"]["n"] == len(world.heldout)
        assert check[key]["overlap"] is True, json.dumps(check[key])
    assert check["kl_rao_blackwell"]["value"] > 0


def test_prompts_of_a_directory_that_is_not_a_lab_run(tmp_path):
    result = cli("data", "prompts", tmp_path, "--out", tmp_path / "p.jsonl")
    assert result.exit_code == 1 and "not a lab run directory" in result.output
    assert not (tmp_path / "p.jsonl").exists()
