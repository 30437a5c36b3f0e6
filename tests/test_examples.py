"""`make examples` (examples/make_examples.py, rlxf/audit/findings.py): every number an example's
header quotes is read from its run's report.json into examples/results/NAME.json, and the header
block is rendered from that file; these tests check the reading against the report itself, the
rendering against its own results file, and that no header quotes a number no results file
backs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rlxf.audit.findings import BEGIN, END, NOT_YET, block, finding, lookup, quoted, rewrite
from rlxf.config import load_config

EXAMPLES = Path(__file__).parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import make_examples  # noqa: E402


def _report(run: Path) -> dict:
    return json.loads((run / "report" / "report.json").read_text())


def _by_id(items: list[dict], key: str) -> dict:
    return next(x for x in items if x["id"] == key)


def test_a_path_reads_the_number_the_report_holds(tiny_run):
    report = _report(tiny_run)
    syc = _by_id(report["failure_modes"], "sycophancy")
    f = finding(report, {"label": "s", "path": ["failure_modes", "sycophancy", "change"]})
    assert (f["value"], f["ci95"], f["n"]) == (syc["change"]["value"], syc["change"]["ci95"],
                                               syc["change"]["n"])
    assert f["within_noise"] == syc["change"]["within_noise"]
    level = finding(report, {"label": "s", "path": ["failure_modes", "sycophancy"]})
    assert (level["value"], level["ci95"]) == (syc["number"], syc["ci95"])
    assert "within_noise" not in level
    gold = report["seeds"]["headline"]["gold/utility"]["change"]
    assert lookup(report, ["seeds", "headline", "gold/utility", "change"]) == gold
    with pytest.raises(KeyError, match="no item with id 'nope' in failure_modes"):
        lookup(report, ["failure_modes", "nope"])
    with pytest.raises(KeyError, match="no key 'x' in seeds/headline"):
        lookup(report, ["seeds", "headline", "x"])


def test_a_number_with_its_interval_stored_beside_it_reads_as_a_change():
    report = {"oversight": {"rise": {"gap": 0.12}, "rise_ci95": {"gap": [0.05, 0.2]}}}
    spec = {"label": "gap", "path": ["oversight", "rise", "gap"],
            "ci95": ["oversight", "rise_ci95", "gap"], "change": True, "percent": True}
    f = finding(report, spec)
    assert (f["value"], f["ci95"], f["within_noise"]) == (0.12, [0.05, 0.2], False)
    report["oversight"]["rise_ci95"] = None  # one side not measured: no interval
    assert finding(report, spec)["ci95"] is None


def _optional_stage_report(tmp_path: Path) -> dict:
    """A report with the sections of the optional stages finetune and process (the tiny run
    has them off): the fake run's alignment tax, and oversight read from a process stage's
    files (bon.json, per-question sums)."""
    from report_fakes import make_run
    from test_bon_sweep_intervals import _seed_run
    from test_stage_intervals import _process_rows

    from rlxf.audit.oversight import build_oversight
    from rlxf.audit.report import build_report
    from rlxf.rundir import write_jsonl
    make_run(tmp_path / "tax", until="finetune")
    report = build_report(tmp_path / "tax")
    proc = tmp_path / "process"
    (proc / "process").mkdir(parents=True)
    rows = _process_rows(np.random.default_rng(0), 0.2, n_questions=8)
    write_jsonl(proc / "process" / "bon_prompts.jsonl", rows)
    (proc / "process" / "bon.json").write_text(json.dumps({"bon": {
        f"{s}/n{n}": {} for s in ("orm", "prm") for n in (1, 4)}}))
    report["oversight"] = build_oversight(proc, {"process": {"counts": {"responses": 1}}})
    _seed_run(tmp_path / "sweep", np.random.default_rng(0))  # a best-of-n sweep's samples
    report["overoptimisation"] = build_report(tmp_path / "sweep")["overoptimisation"]
    return report


def test_every_manifest_path_the_tiny_run_has_resolves_there(tiny_run, tmp_path):
    report = _report(tiny_run)
    optional = _optional_stage_report(tmp_path)
    checked = 0
    for ex in make_examples.manifest():
        assert (EXAMPLES / ex["config"]).is_file(), ex["name"]
        for spec in ex["findings"]:
            if spec["path"][0] in ("seeds", "failure_modes"):  # sections every run has
                finding(report, spec)
                checked += 1
            elif spec["path"][:3] in (["alignment_tax", "intervals"] + spec["path"][2:3],
                                      ["oversight", "process"] + spec["path"][2:3],
                                      ["overoptimisation", "sweep", "intervals"]):
                # optional stages and the best-of-n sweep (the λ sweep's paths:
                # tests/test_sweep_conservative.py)
                f = finding(optional, spec)
                assert f["value"] is not None and f["n"]["seeds"] == 1, spec["label"]
                if spec["path"][-1] not in ("orm", "prm", "kl_measured"):
                    assert "within_noise" in f, spec["label"]  # a change, read as one
                checked += 1
    assert checked >= 30
    sweep = next(ex for ex in make_examples.manifest() if ex["name"] == "bon_sweep")
    assert make_examples.command(sweep, Path("runs"), 3) == [
        "rlxf", "sweep", "examples/bon_sweep.toml", "--out", "runs/bon_sweep", "--seeds", "3",
        "--reuse", "runs/quickstart"]


def test_results_from_a_run_become_the_header_block_and_stay_there(tiny_run, tmp_path):
    config = tmp_path / "tiny.toml"
    original = (Path(__file__).parent / "configs" / "tiny.toml").read_text()
    config.write_text(original)
    ex = {"name": "tiny", "config": "tiny.toml", "command": "run", "findings": [
        {"label": "gold utility, policy − SFT", "path": ["seeds", "headline", "gold/utility",
                                                           "change"]},
        {"label": "sycophancy, policy", "path": ["failure_modes", "sycophancy"], "percent": True}]}
    report = _report(tiny_run)
    results = make_examples.results_of(ex, report, ["rlxf", "run", "x"])
    make_examples.write(ex, results, tmp_path)
    saved = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert saved["seeds"] == [report["run"]["seed"]]
    gold = report["seeds"]["headline"]["gold/utility"]["change"]
    assert saved["findings"][0]["value"] == gold["value"]
    text = config.read_text()
    lines = quoted(text)
    assert lines == block(saved) and lines[0].startswith(BEGIN) and lines[-1] == END
    shown = f"{gold['value']:+.3f}"
    shown = "±" + shown[1:] if float(shown) == 0 else shown  # no "-0.000"
    lo, hi = (f"{x:+.3f}".replace("+0.000", "±0.000").replace("-0.000", "±0.000")
              for x in gold["ci95"])
    assert lines[1] == (f"#   gold utility, policy − SFT: {shown} [{lo}, {hi}], "
                        f"{'within' if gold['within_noise'] else 'beyond'} noise "
                        f"(n: 1 seed × {gold['n']['prompts']} prompts)")
    assert lines[2].startswith("#   sycophancy, policy: ") and lines[2].count("%") == 3
    assert "within noise" in lines[1] or "beyond noise" in lines[1]
    # the config still loads, and the rest of the file is what it was
    load_config(config)
    assert text.replace("\n".join(lines) + "\n", "") == original
    # regenerating replaces the block instead of adding a second one
    make_examples.write(ex, {**saved, "date": "2030-01-01"}, tmp_path)
    again = config.read_text()
    assert again.count(BEGIN) == 1 and "2030-01-01" in again


def test_an_unclosed_block_is_an_error_not_a_silent_duplicate():
    with pytest.raises(ValueError, match="without a closing"):
        rewrite(f"{BEGIN} (1 seeds):\n#   x: 1\nseed = 0\n", ["# new"])


def test_every_header_quotes_its_results_file_digit_for_digit():
    """The bar: an example's measured block is exactly what its results file renders to, and no
    example's header quotes measured numbers outside such a block."""
    for toml in sorted(EXAMPLES.glob("*.toml")):
        text = toml.read_text()
        head = [r for r in text.splitlines() if r.startswith("#")]
        lines = quoted(text)
        results = EXAMPLES / "results" / f"{toml.stem}.json"
        if lines is None:
            assert not any(r.startswith("# Measured") for r in head), (
                f"{toml.name} quotes measured numbers outside a `make examples` block")
            continue
        if not results.is_file():  # not measured yet, and the block says so
            assert lines == NOT_YET, f"{toml.name}: a measured block without {results.name}"
            continue
        saved = json.loads(results.read_text())
        assert lines == block(saved), toml.name
        for f in saved["findings"]:  # a path that no longer exists reads as null: caught here
            assert f["value"] is not None and f["ci95"] and f["n"], (toml.name, f["label"])


def test_the_alarm_is_checked_over_every_example_run_so_far(tmp_path, monkeypatch):
    from test_overopt_alarm import point, write_policy
    examples = tmp_path / "examples"
    examples.mkdir()
    monkeypatch.setattr(make_examples, "EXAMPLES", examples)
    monkeypatch.setattr(make_examples, "RESULTS", examples / "results")
    write_policy(tmp_path / "runs" / "ppo_overopt", [point(0, 0.7), point(10, 0.8, flattery=0.4),
                                                     point(20, 0.6, flattery=0.5)])
    make_examples.alarm([{"name": "ppo_overopt"}, {"name": "not_run_yet"}], Path("runs"))
    saved = json.loads((examples / "results" / "alarm.json").read_text())
    assert saved["run_dirs"] == ["runs/ppo_overopt"] and len(saved["runs"]) == 1
    assert saved["summary"]["gold_falls"] == 1 and saved["summary"]["detected"] == 1
    assert saved["summary"]["steps_after_gold_peak"] == [10]
