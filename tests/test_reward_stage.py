"""The reward stage's optional models end to end on the tiny config (through the real CLI):
Plackett-Luce on k-wise rankings from a feedback file, ensemble uncertainty, aspect heads and
group-conditioned heads. Pretraining and SFT run once for the module; each test reruns only
feedback and reward on a copy."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reward_fixtures import gold_rankings
from test_pipeline import ENV, TINY

pytestmark = pytest.mark.filterwarnings("ignore")


def rlxf(*args) -> None:
    proc = subprocess.run([sys.executable, "-m", "rlxf.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"rlxf {args} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rlxf("run", TINY, "--out", out, "--until", "sft")
    return out


def run_variant(sft_run: Path, tmp_path: Path, feedback: str = "", reward: str = "") -> Path:
    """A copy of the SFT run, then feedback and reward under the tiny config plus these lines
    at the top of its [feedback] and [reward] sections."""
    config = tmp_path / "variant.toml"
    config.write_text(TINY.read_text().replace("[feedback]\n", f"[feedback]\n{feedback}\n")
                      .replace("[reward]\n", f"[reward]\n{reward}\n"))
    out = tmp_path / "run"
    shutil.copytree(sft_run, out)
    rlxf("run", config, "--out", out, "--until", "reward")
    return out


def stage(run: Path, name: str) -> dict:
    return json.loads((run / name / "_stage.json").read_text())


def test_rankings_from_a_feedback_file_train_a_plackett_luce_reward_model(sft_run, tmp_path):
    records = tmp_path / "rankings.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in gold_rankings(sft_run, 300, k=3)))
    out = run_variant(sft_run, tmp_path, f'source = "human"\nrecords = "{records}"')
    rec = stage(out, "reward")
    assert rec["counts"]["rankings/train"] > 200 and rec["counts"]["pairs/train"] == 0
    # held-out pairs come from held-out rankings: 3 pairs each
    assert rec["counts"]["pairs/heldout"] == 3 * (300 - rec["counts"]["rankings/train"])
    assert rec["metrics"]["accuracy/gold"] > 0.65  # chance is 0.5; the rankings are gold
