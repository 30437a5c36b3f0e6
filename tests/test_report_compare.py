"""`rlxf compare RUN_A RUN_B`: two runs' reports side by side, every number paired with its
difference and a verdict, written next to run B (or to --out), byte-deterministic."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fakes import CONFIG, make_run
from tiny_runs import rlxf as cli

from rlxf.audit.compare import build_comparison, write_comparison
from rlxf.audit.plots import failure_mode_svg
from rlxf.audit.report import build_report

# B's policy: less sycophantic, lower gold utility, a different proxy; B discloses no audits.
B_POLICY = {"rate/sycophancy": 0.3, "gold/utility": 0.5, "reward/proxy": 0.9}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cmp")
    make_run(root / "a")
    make_run(root / "b", config=CONFIG.split("[disclosure]")[0], policy_metrics=B_POLICY)
    return root / "a", root / "b"


def rlxf(*args, cwd=None) -> subprocess.CompletedProcess:
    """`rlxf ARGS` in its own process; the tests read its exit code."""
    return cli(*args, check=False, cwd=cwd)


def test_numbers_are_paired_with_a_difference_and_a_verdict(runs):
    cmp = build_comparison(build_report(runs[0]), build_report(runs[1]))
    assert cmp["a"]["id"] == "a" and cmp["b"]["id"] == "b"
    pol = cmp["models"]["policy"]
    assert pol["rate/sycophancy"] == {"a": 0.5, "b": 0.3, "difference": -0.2,
                                      "verdict": "better"}
    assert pol["gold/utility"]["verdict"] == "worse"
    assert pol["gold/utility"]["difference"] == pytest.approx(-0.1)
    assert pol["reward/proxy"]["verdict"] == "changed"  # the proxy has no better direction
    assert pol["gold/harmless"]["verdict"] == "same"
    assert cmp["models"]["sft"]["gold/utility"]["verdict"] == "same"
    audits = next(d for d in cmp["disclosure"] if d["item"] == "internal and external audits")
    assert (audits["a"], audits["b"], audits["changed"]) == ("disclosed", "not disclosed", True)
    modes = {m["id"]: m for m in cmp["failure_modes"]}
    assert modes["sycophancy"]["verdict"] == "better"
    assert modes["sycophancy"]["b_reading"].startswith("The policy agrees with the user's false "
                                                       "premise in 30% of answers, down from 50%")
    assert modes["backdoor"]["verdict"] == "same" and modes["backdoor"]["difference"] is None


def test_cli_writes_next_to_run_b_and_is_byte_deterministic(runs, tmp_path):
    a, b = runs
    proc = rlxf("compare", a, b)
    assert proc.returncode == 0, proc.stderr
    names = ("compare-a.html", "compare-a.md", "compare-a.json")
    first = {n: (b / "report" / n).read_bytes() for n in names}
    assert rlxf("compare", a, b).returncode == 0
    assert {n: (b / "report" / n).read_bytes() for n in names} == first
    # a pure function of the two directories: copies elsewhere, another cwd, --out
    elsewhere = tmp_path / "elsewhere"
    for run in runs:
        shutil.copytree(run, elsewhere / run.name, ignore=shutil.ignore_patterns("report"))
    out = tmp_path / "out"
    proc = rlxf("compare", elsewhere / "a", elsewhere / "b", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {n: (out / n).read_bytes() for n in names} == first
    assert not (elsewhere / "b" / "report").exists()  # --out: nothing written into run B
    assert json.loads(first["compare-a.json"])["schema_version"] == "1"


def test_html_puts_both_runs_side_by_side_and_highlights_differences(runs, tmp_path):
    paths = write_comparison(*runs, tmp_path)
    page = paths["html"].read_text()
    assert '<tr class="better"><td>rate/sycophancy</td>' in page
    assert '<tr class="worse"><td>gold/utility</td>' in page
    assert 'id="a-fm-sycophancy"' in page and 'id="b-fm-sycophancy"' in page
    assert page.count('<div class="cols cmp">') == 10  # one pair per failure mode
    assert "<script" not in page and "&lt;script&gt;" in page  # A's config free text, escaped
    drawn = sum(failure_mode_svg(m) is not None for run in runs
                for m in build_report(run)["failure_modes"])
    assert page.count("<svg") == drawn  # every failure-mode plot of both runs
    md = paths["md"].read_text()
    assert md.startswith("# rlxf compare: A = a, B = b")
    assert "| rate/sycophancy | 0.500 | 0.300 | -0.200 | ▲ better |" in md


def test_cli_refuses_a_directory_that_is_not_a_run(runs, tmp_path):
    proc = rlxf("compare", runs[0], tmp_path)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
