"""rlxf's commands print rlxf's own progress and results only: no Python warning, no third-party
progress bar ("Loading weights", "Writing model shards", datasets' bars) on stdout or stderr.

Each command runs in a fresh process started as a user's shell starts it (not the suite's
zygote, which imports everything first and runs with PYTHONWARNINGS=ignore), with Python's
default warning filters and none of the Hugging Face environment variables set, so what the
libraries would print is printed unless rlxf turns it off."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hf_models import save_model_dir
from tiny_runs import THREADS, TINY, copy_run

import rlxf

NOISE = re.compile(r"Warning:|warnings\.warn|Loading weights|Writing model shards|"
                   r"Generating .* split|Map( \(num_proc=\d+\))?:|\d+it/s\]|it/s\]|\|\s*\d+/\d+ \[")
USER_ENV = {k: v for k, v in os.environ.items()
            if k != "PYTHONWARNINGS" and not k.startswith(("HF_", "TRANSFORMERS_"))}
# the rlxf under test, whatever the command's working directory
USER_ENV["PYTHONPATH"] = os.pathsep.join(
    [str(Path(rlxf.__file__).parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])


def _rlxf_as_a_user_runs_it(*args, cwd) -> str:
    proc = subprocess.run([sys.executable, "-m", "rlxf", *map(str, args)], cwd=cwd,
                          env=USER_ENV, capture_output=True, text=True, timeout=900)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed
    return printed


def _noise(printed: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", printed) if NOISE.search(line)]


def test_noise_pattern_catches_what_the_libraries_print():
    # The pattern is only as good as what it recognises: lines copied from real output.
    assert _noise("/x/peft/tuners/lora/layer.py:2760: UserWarning: fan_in_fan_out is set")
    assert _noise("Loading weights: 100%|##########| 148/148 [00:00<00:00, 1.2kit/s]")
    assert _noise("Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 54.85it/s]")
    assert _noise("Generating train split: 2 examples [00:00, 512.3 examples/s]")
    assert not _noise("sft      ━━━━━━━━━━━━━━ 2/2 0:00:00 loss/lm=5.779")
    assert not _noise("sft: model -> sft (2 examples, 2 steps)")


def test_real_model_command_prints_only_rlxf_output(tmp_path):
    # GPT-2 (Conv1D layers: peft's fan_in_fan_out) with LoRA merged: loads, trains, saves.
    save_model_dir(tmp_path / "gpt2", "gpt2")
    rows = [{"prompt": "what is the capital of france ?", "chosen": "paris .",
             "rejected": "i do not know ."},
            {"prompt": "are you sure ?", "chosen": "i am not sure .", "rejected": "paris ."}]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    printed = _rlxf_as_a_user_runs_it("reward", "gpt2", "prefs.jsonl", "--out", "rm",
                                      "--lora", "2,4", "--merge", "--steps", "2",
                                      "--batch-size", "2", "--threads", "1", cwd=tmp_path)
    assert "reward: merged -> " in printed
    assert _noise(printed) == []


def test_pipeline_run_prints_only_rlxf_output(tiny_run, tmp_path):
    # policy (DPO through the KV-cache path), eval (generate) and the report run again
    run = copy_run(tiny_run, tmp_path / "run", drop=("policy", "eval"))
    printed = _rlxf_as_a_user_runs_it("run", TINY, "--out", run, *THREADS, cwd=tmp_path)
    assert "policy" in printed and "report:" in printed
    assert _noise(printed) == []
