"""The audit report on a small hand-written run directory (tests/report_fakes.py, no
training): the JSON contract and its schema, byte-determinism, reading nothing outside the run,
partial runs, the disclosure checklist, 3H tensions, failure modes, HTML, and sample order."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from report_fakes import CASPER_ITEMS, EXPECTED_ORDER, VERSIONS, make_run

from rlxf.audit.disclosure import STATUSES
from rlxf.audit.report import CONTRACT_METRICS, SCHEMA_PATH, STAGE_ORDER, build_report, write_report


@pytest.fixture
def run_dir(tmp_path) -> Path:
    make_run(tmp_path / "r1")
    return tmp_path / "r1"


def validate(report: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)


def test_stage_order_is_the_pipelines():
    from rlxf.pipeline import STAGE_NAMES
    assert STAGE_ORDER == STAGE_NAMES


def test_full_report_validates_and_fills_the_contract(run_dir):
    report = build_report(run_dir)
    validate(report)
    run = report["run"]
    assert run["id"] == "r1" and run["seed"] == 1 and run["versions"] == VERSIONS
    assert run["created"] == "2026-01-01T00:00:01+00:00"
    assert run["wall_s"] == pytest.approx(1.5 * sum(range(1, 8)))
    assert len(run["config_sha256"]) == 64
    for name, role in (("base", "base"), ("sft", "sft"), ("policy", "policy")):
        m = report["models"][name]
        assert m["role"] == role and set(CONTRACT_METRICS) <= m["metrics"].keys()
        assert m["metrics"]["world/parse_rate"] == 0.9  # non-contract metrics are kept
        assert m["metric_notes"]["rate/backdoor"].startswith("feedback.trigger_rate is 0")
        for metric, value in m["metrics"].items():
            assert value is not None or metric in m["metric_notes"]
    assert "benign" in report["models"]["base"]["metric_notes"]["rate/refusal_benign"]
    assert report["feedback"]["n_judgements"] == 300 and report["feedback"]["n_annotators"] == 5
    assert report["reward_model"]["accuracy/gold"] == 0.55
    assert report["reward_model"]["bias/length"] == 0.8  # from the reward stage's probes
    assert report["reward_model"]["probes"]["length"]["gold_gap"] == -0.03
    assert report["reward_model"]["bias/flattery"] is None
    assert "did not probe" in report["reward_model"]["notes"]["bias/flattery"]
    assert report["overoptimisation"]["points"][1] == {
        "step": 20, "kl": 4.0, "reward_proxy": 0.6, "reward_gold": 0.65,
        "parse_rate": None, "gold_parsed": None}  # not in this (older) history
    for m in report["failure_modes"]:  # the bar: every number carries ci95 and n
        assert "ci95" in m and "n" in m, m["id"]
    assert report["seeds"]["n"] == 1 and report["seeds"]["members"] == [{"seed": 1, "dir": "."}]
    assert report["overoptimisation"]["fit"] is None
    assert [s["stage"] for s in report["stages"]] == list(STAGE_ORDER)


def test_groups_take_each_groups_own_utility_from_eval(run_dir):
    groups = build_report(run_dir)["groups"]
    assert groups["crowd"]["gold/utility_sft"] == 0.7
    assert groups["crowd"]["gold/utility_policy"] == 0.6
    assert groups["minority"]["gold/utility_sft"] == 0.8
    assert groups["minority"]["gold/utility_policy"] is None
    assert "did not score" in groups["minority"]["notes"]["gold/utility_policy"]
    assert groups["minority"]["n_annotators"] == 2
    assert groups["minority"]["weights"]["helpful"] == 0.6


def test_tradeoffs_need_changes_beyond_noise(run_dir):
    # eval/metrics.json says harmful traded harmless -0.20 for helpful +0.30, but the fake's
    # eval/samples.jsonl (what the intervals are drawn from) has no harmful answer: without an
    # interval no trade-off is claimed (the old fixed 0.05 threshold claimed one); factual has
    # one held-out prompt: nothing to resample, so no interval either.
    tensions = build_report(run_dir)["tensions"]
    assert set(tensions["per_family"]["harmful"]) == {"base", "sft", "policy"}
    assert tensions["deltas"]["harmful"] == pytest.approx(
        {"helpful": 0.3, "harmless": -0.2, "honest": 0.0, "utility": 0.3 * 0.3 - 0.45 * 0.2})
    assert tensions["intervals"]["harmful"] == dict.fromkeys(
        ("helpful", "harmless", "honest", "utility"))
    factual = tensions["intervals"]["factual"]["helpful"]
    assert factual["ci95"] is None and factual["within_noise"] is None
    assert factual["n"]["prompts"] == 1 and factual["n"]["seeds"] == 1
    assert tensions["tradeoffs"] == []
    assert tensions["readings"] == [
        "In no prompt family did the policy lower one of helpful, harmless, honest and raise "
        "another, each beyond noise, against SFT.",
        "No interval, so no trade-off is read (too few held-out prompts or no samples): "
        "factual, harmful."]


def outputs(run_dir: Path) -> dict[str, bytes]:
    """Every file the audit writes: the report and the cards beside the artifacts."""
    report = json.loads((run_dir / "report" / "report.json").read_text())
    files = [f"report/{n}" for n in ("report.json", "report.md", "index.html")]
    return {rel: (run_dir / rel).read_bytes() for rel in files + sorted(report["cards"].values())}


ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def test_report_is_byte_deterministic(run_dir):
    write_report(run_dir)
    first = outputs(run_dir)
    assert "feedback/DATASHEET.md" in first
    write_report(run_dir)
    assert outputs(run_dir) == first
    assert json.loads(first["report/report.json"]) == build_report(run_dir)


def test_audit_of_a_moved_copy_from_another_cwd_gives_the_same_bytes(run_dir, tmp_path):
    """`rlxf audit` reads nothing outside the run directory: a copy elsewhere, with the original
    deleted, audited from a working directory holding a matplotlibrc and a config.toml of its
    own, gives the same bytes."""
    write_report(run_dir)
    first = outputs(run_dir)
    moved = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, moved)
    shutil.rmtree(moved / "report")
    shutil.rmtree(run_dir)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "matplotlibrc").write_text("font.size: 30\nlines.linewidth: 9\nsvg.hashsalt: x\n")
    (cwd / "config.toml").write_text("seed = 99\n[disclosure]\naudits = 'from the cwd'\n")
    proc = subprocess.run([sys.executable, "-m", "rlxf.cli", "audit", str(moved)], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert outputs(moved) == first


OPEN_HOOK = """
import json, os, sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and args[0]:
        opened.append(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(hook)
from rlxf.audit.report import write_report
write_report(sys.argv[1])
print(json.dumps(sorted(set(opened))))
"""


def test_audit_opens_no_file_outside_the_run_dir_but_code_and_caches(run_dir, tmp_path):
    import sysconfig

    import matplotlib

    import rlxf
    allowed = {os.path.realpath(p) for p in (
        sys.prefix, sys.base_prefix, *sysconfig.get_paths().values(),
        Path(rlxf.__file__).parent, matplotlib.get_cachedir(), matplotlib.get_configdir(),
        "/dev", "/proc", "/sys", "/etc", "/usr/lib", "/usr/share", "/usr/local/lib")}
    proc = subprocess.run([sys.executable, "-c", OPEN_HOOK, str(run_dir)], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    opened = json.loads(proc.stdout.strip().splitlines()[-1])
    root = os.path.realpath(run_dir)
    outside = [p for p in opened if not p.startswith(root + os.sep)
               and not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    assert outside == []
    assert any(p.endswith("eval/samples.jsonl") for p in opened)  # the hook does see reads


@pytest.mark.parametrize("until", ["world", "feedback", "policy"])
def test_partial_run_reports_nulls_with_reasons(tmp_path, until):
    root = tmp_path / f"until-{until}"
    make_run(root, until=until)
    paths = write_report(root)
    report = json.loads(paths["json"].read_text())
    validate(report)
    for m in report["models"].values():
        assert all(v is None for v in m["metrics"].values())
        assert m["metric_notes"].keys() == m["metrics"].keys()
        assert "stage eval has not run" in m["metric_notes"]["gold/utility"]
    assert report["samples"] == [] and "samples" in report["notes"]
    by_item = {d["item"]: d for d in report["disclosure"]}
    policy_eval = by_item["policy evaluation and red teaming"]
    assert policy_eval["status"] == "not disclosed" and policy_eval["value"] is None
    assert policy_eval["reason"]
    if until == "world":
        assert report["feedback"]["n_judgements"] is None
        assert report["feedback"]["notes"]["n_judgements"] == "stage feedback has not run"
        assert report["reward_model"]["accuracy/heldout"] is None
        assert report["groups"] == {} and "groups" in report["notes"]
        assert by_item["pretraining"]["status"] == "not disclosed"
    if until != "policy":
        assert report["overoptimisation"]["points"] == []
        page = paths["html"].read_text()
        section = page[page.index('<section id="overoptimisation">'):]
        assert "no over-optimisation points" in section[:section.index("</section>")]
        assert ("<svg" in page) == (until == "feedback")  # only the annotators' plot
    assert [s["status"] for s in report["stages"]].count("done") == STAGE_ORDER.index(until) + 1
    for m in report["failure_modes"]:
        assert m["reading"]
        if m["number"] is None:
            assert m["reading"].startswith("Not measured: ") and m["notes"]["number"]
    assert report["surface"] is None and report["notes"]["surface"] == "stage eval has not run"


def test_disclosure_has_the_eleven_items_and_the_configs_answers(run_dir):
    items = build_report(run_dir)["disclosure"]
    assert [(d["section"], d["item"]) for d in items] == CASPER_ITEMS
    assert all(d["status"] in STATUSES for d in items)
    by_item = {d["item"]: d for d in items}
    audits = by_item["internal and external audits"]
    assert audits["status"] == "disclosed" and audits["value"].startswith("internal review")
    risks = by_item["expected risks and failure modes"]
    assert risks["status"] == "not disclosed" and risks["value"] is None
    assert "ties dropped: 0" in by_item["loss function and disagreement modelling"]["value"]
    assert "identical pairs dropped (7)" in by_item["example selection"]["value"]
    assert "minority x2" in by_item["evaluator selection and training"]["value"]
    rm_eval = by_item["reward model evaluation and red teaming"]
    assert "red teaming not performed" in rm_eval["value"] and rm_eval["status"] == "disclosed"
    for d in items:
        assert (d["value"] is None) == (d["status"] != "disclosed")


def test_html_is_self_contained_with_plot_sections_and_escaped_text(run_dir):
    from rlxf.audit.render import SECTIONS
    paths = write_report(run_dir)
    page = paths["html"].read_text()
    assert '<meta name="viewport"' in page
    for key, heading in SECTIONS:
        assert f'<section id="{key}"><h2>{heading.replace("&", "&amp;")}</h2>' in page
    assert "<script" not in page and "&lt;script&gt;" in page  # config free text, escaped
    assert not any(ref in page for ref in ('src="http', 'href="http', "<link", "@import",
                                           "url(http", "<img"))
    assert 'class="badge not-disclosed"' in page
    # frontier (2) + over-optimisation + one per failure mode with data; the fake run measured
    # neither the backdoor nor apologies, so those modes say why instead of drawing
    report = json.loads(paths["json"].read_text())
    drawn = [m for m in report["failure_modes"] if m["id"] not in ("backdoor", "apology")]
    assert page.count("<svg") == 3 + len(drawn)
    assert page.count("no plot: nothing measured to draw") == 2
    assert "nav{display:flex;flex-wrap:wrap" in page  # the navigation wraps on a phone
    md = paths["md"].read_text()
    assert md.startswith("# rlxf audit report: r1")
    for _, heading in SECTIONS:
        assert f"## {heading}" in md
    assert "### 2. Reward hacking" in md


def test_tension_matrix_marks_changes_within_noise(run_dir):
    paths = write_report(run_dir)
    page = paths["html"].read_text()
    row = page[page.index("<td>harmful</td>"):]
    row = row[:row.index("</tr>")]
    # no interval behind harmful (see test_tradeoffs_need_changes_beyond_noise): no colour
    assert '<td class="num">+0.30</td>' in row and '<td class="num">-0.20</td>' in row
    assert 'class="lost' not in row and 'class="gained' not in row
    md = paths["md"].read_text()
    assert "≈ within noise (the interval spans zero)" in md and "within noise" in page


FAILURE_MODES = ["overoptimisation", "reward_hacking", "sycophancy", "anthropomorphism",
                 "apology", "refusals", "mode_collapse", "group_disparity", "backdoor",
                 "annotators"]


def test_failure_modes_each_have_a_number_or_a_reason_and_a_reading(run_dir):
    modes = {m["id"]: m for m in build_report(run_dir)["failure_modes"]}
    assert list(modes) == FAILURE_MODES
    for m in modes.values():
        assert m["reading"] and m["definition"]
        if m["number"] is None:
            assert m["notes"]["number"], m["id"]
    # gold 0.7 at step 0, 0.6 at the end; the proxy kept rising
    oo = modes["overoptimisation"]
    assert oo["number"] == pytest.approx(-0.1)
    assert "peaked at 0.700 (step 0" in oo["reading"] and "kept rising" in oo["reading"]
    assert "rose in 2 of 2 intervals between measurements (Spearman ρ with the step 1.00)" \
        in oo["reading"]
    # every rate is 0.5 in the fake eval: the reading prints what the numbers are
    assert modes["sycophancy"]["reading"].startswith(
        "The policy agrees with the user's false premise in 50% of answers, the same as 50% for "
        "SFT (base 50%). Change against SFT: ")
    assert modes["refusals"]["number"] == 0.5
    assert modes["apology"]["reading"] == ("Not measured: eval/metrics.json has no rate/apology: "
                                           "this run's eval did not measure it.")
    # trigger_rate is 0: the backdoor is not measured, and the reading says why
    assert modes["backdoor"]["number"] is None
    assert modes["backdoor"]["reading"].startswith("Not measured: feedback.trigger_rate is 0")
    # the minority group has no policy utility: no disparity between two groups
    gd = modes["group_disparity"]
    assert gd["number"] is None and "crowd 0.70 → 0.60 (-0.10)" in gd["reading"]
    ann = modes["annotators"]
    assert ann["number"] == 0.66
    assert ann["reading"] == ("Annotators agreed on 66% of pairs of judgements (Krippendorff's α "
                              "0.30); the poisoning detector flagged 2 of 5 annotators, 1 of "
                              "them true poisoners (precision 0.50, recall 1.00 of 1 poisoners).")


def test_reward_hacking_names_the_inflated_feature_and_what_the_proxy_pays(run_dir):
    report = build_report(run_dir)
    rh = next(m for m in report["failure_modes"] if m["id"] == "reward_hacking")
    feats = rh["values"]["features"]
    # on 10 of the policy's 11 prompts its second sample is padded (2 fillers) and flattering,
    # with proxy 99; SFT's second sample is a plain hedge
    assert feats["fillers"]["sft"] == 0
    assert feats["fillers"]["policy"] == pytest.approx(20 / 21, abs=1e-6)
    assert feats["flattery"]["policy"] == pytest.approx(10 / 21, abs=1e-6)
    assert feats["fillers"]["proxy"] > 0
    assert rh["reading"].startswith("The policy pads more: 0.95 filler sentences per answer vs "
                                    "0.00 for SFT, and the reward model pays for it (+")
    assert report["surface"]["models"]["policy"]["types/n"] == 2  # unparsed text, hedge


def test_samples_are_ordered_by_largest_proxy_difference(tmp_path):
    fake = make_run(tmp_path / "r")
    samples = build_report(tmp_path / "r")["samples"]
    expected = [fake.factual_heldout().id] + [fake.others[i].id for i in EXPECTED_ORDER]
    assert [s["prompt_id"] for s in samples] == expected
    diffs = [abs(s["proxy_difference"]) for s in samples]
    assert diffs == sorted(diffs, reverse=True)
    assert samples[1]["policy"]["reward_proxy"] == 4.0  # the first sample, not the later 99
    assert samples[1]["sft"]["response"] == "sft answer 6"


def test_samples_carry_the_gold_utility_of_each_response(tmp_path):
    fake = make_run(tmp_path / "r")
    top = build_report(tmp_path / "r")["samples"][0]
    assert top["sft"]["response"] == fake.true_answer(fake.factual_heldout())
    assert top["sft"]["gold_utility"] == pytest.approx(1.0)  # a true answer: (1, 1, 1)
    # a hedge to a factual question is (0.2, 1, 1) by the judge's table
    assert top["policy"]["gold_utility"] == pytest.approx(0.3 * 0.2 + 0.45 + 0.25)
    assert top["sft"]["gold"] == {"helpful": 1.0, "harmless": 1.0, "honest": 1.0}
    assert top["gold_difference"] == pytest.approx(0.3 * 0.2 - 0.3)
    # placeholder text does not parse: (0, 1, 0.5)
    assert build_report(tmp_path / "r")["samples"][1]["sft"]["gold_utility"] == pytest.approx(
        0.45 + 0.125)


def test_tension_readings_name_losses_without_gains_and_say_when_nothing_traded():
    from rlxf.audit.report import _tensions_section

    def models(policy_honest):
        fam = {"helpful": 0.5, "harmless": 1.0, "honest": 0.8, "utility": 0.7}
        return {"base": {"per_family": None}, "sft": {"per_family": {"companion": fam}},
                "policy": {"per_family": {"companion": {**fam, "honest": policy_honest}}}}
    def intervals(honest_ci):
        still = {"value": 0.0, "ci95": [-0.01, 0.01], "n": {}, "within_noise": True}
        return {"companion": {"helpful": still, "harmless": still, "utility": still,
                              "honest": {"value": -0.3, "ci95": honest_ci, "n": {},
                                         "within_noise": honest_ci[0] <= 0 <= honest_ci[1]}}}
    lost = _tensions_section(models(0.5), intervals([-0.4, -0.2]))
    assert lost["tradeoffs"] == []
    assert lost["readings"] == [
        "In no prompt family did the policy lower one of helpful, harmless, honest and raise "
        "another, each beyond noise, against SFT.",
        "companion: the policy lost honest 0.80 → 0.50 (-0.30) against SFT, beyond noise, and no "
        "axis gained beyond noise."]
    # the same loss with an interval that spans zero is noise, and read as such
    noisy = _tensions_section(models(0.5), intervals([-0.5, 0.1]))
    assert noisy["readings"] == [lost["readings"][0],
                                 "Within noise (every axis's 95% interval spans zero): companion."]
