"""`rlxf run --reuse RUN`: stages whose fingerprint (config slice and inputs) matches RUN's are
copied from RUN instead of recomputed; the first stage that differs, and everything after it,
runs here. What `make examples` uses to share one seed's world, pretraining and SFT between the
examples built on the quickstart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tiny_runs import TINY, rlxf

from rlxf.rundir import RunDir
from rlxf.seeds import plan, reuse_dirs


def _ledger(run: Path) -> dict[str, dict]:
    return {r["stage"]: r for r in RunDir(run).ledger()}


def test_a_run_with_a_different_policy_copies_every_stage_before_the_policy(tiny_run, tmp_path):
    config = tmp_path / "longer_policy.toml"
    config.write_text(TINY.read_text().replace("[policy]\nsteps = 40", "[policy]\nsteps = 20"))
    out = tmp_path / "run"
    proc = rlxf("run", config, "--out", out, "--reuse", tiny_run, "--until", "policy")
    ledger, source = _ledger(out), _ledger(tiny_run)
    for stage in ("world", "pretrain", "sft", "feedback", "reward"):
        assert ledger[stage]["reused_from"] == str(tiny_run.resolve()), stage
        assert ledger[stage]["output_hash"] == source[stage]["output_hash"]
        assert ledger[stage]["wall_s"] == source[stage]["wall_s"]  # what the stage cost
        assert not (out / stage).is_symlink()  # copied: the source may be deleted later
    assert "reused_from" not in ledger["policy"]
    assert ledger["policy"]["fingerprint"] != source["policy"]["fingerprint"]
    assert "copied" in proc.stdout + proc.stderr
    # the copy stands on its own: rerunning without --reuse recomputes nothing
    rerun = rlxf("run", config, "--out", out, "--until", "policy")
    assert (rerun.stdout + rerun.stderr).count("up to date, skipped") == 6


def test_a_changed_pretraining_reuses_only_the_world(tiny_run, tmp_path):
    config = tmp_path / "other_pretrain.toml"
    config.write_text(TINY.read_text().replace("[pretrain]\nsteps = 40", "[pretrain]\nsteps = 8"))
    out = tmp_path / "run"
    rlxf("run", config, "--out", out, "--reuse", tiny_run, "--until", "pretrain")
    ledger = _ledger(out)
    assert "reused_from" in ledger["world"]
    assert "reused_from" not in ledger["pretrain"]


def test_reuse_of_a_directory_that_is_not_a_run_stops_before_any_work(tmp_path):
    out = tmp_path / "run"
    proc = rlxf("run", TINY, "--out", out, "--reuse", tmp_path / "nowhere", check=False)
    assert proc.returncode == 2
    assert "--reuse" in proc.stdout + proc.stderr and "nowhere" in proc.stdout + proc.stderr
    assert not (out / "world").exists()


def test_each_seed_reuses_the_same_seed_of_the_other_run(tmp_path):
    source = tmp_path / "quickstart"
    for m in plan(source, 3, 3)[:2]:  # seeds 3 and 4 exist there, seed 5 does not
        m.dir.mkdir(parents=True)
    dirs = reuse_dirs(source, 3, 3)
    assert dirs == {3: source.resolve(), 4: (source / "seeds" / "seed=4").resolve()}
    assert reuse_dirs(None, 3, 3) == {}
    shutil.rmtree(source)
    assert reuse_dirs(source, 3, 3) == {}


def test_the_report_says_which_stages_were_copied(tiny_run, tmp_path):
    out = tmp_path / "run"
    rlxf("run", TINY, "--out", out, "--reuse", tiny_run)
    stages = {s["stage"]: s for s in json.loads(
        (out / "report" / "report.json").read_text())["stages"]}
    assert stages["pretrain"]["status"] == "reused"
    assert stages["pretrain"]["reused_from"] == str(tiny_run.resolve())
