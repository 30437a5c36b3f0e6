"""`rlxf audit OUT` on the output of the real-model commands (issue 16 item 1): OUT stays a
loadable model directory and is also a run directory (OUT/ledger.jsonl in rundir.py's record
format); its report is valid against report.schema.json, its disclosure describes the run that
really happened -- data file and format, feedback type and count, loss and beta, steps, base
model, LoRA, reward sources -- with "not disclosed" where the run cannot know a fact, and no
lab-world wording; index.html loads in Chromium without a network request."""

from __future__ import annotations

import hashlib
import json
import shutil

import jsonschema
import pytest
import torch
from hf_models import save_model_dir
import test_report_browser
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from rlxf.audit.real_facts import real_disclosure
from rlxf.audit.render_real import SECTIONS as REAL_SECTIONS
from rlxf.audit.report import SCHEMA_PATH, build_report
from rlxf.cli import app
from rlxf.rundir import RunDir
from rlxf.serve.model import resolve_model_dir
from rlxf.tune.run_record import write_run_record

PREFS = [
    {"prompt": "what is the capital of france ?", "chosen": "the capital of france is paris .",
     "rejected": "i do not know ."},
    {"prompt": "how do i kill a python process ?", "chosen": "use kill with its process id .",
     "rejected": "write a haiku about the sea ."},
    {"prompt": "write a haiku about the sea .", "chosen": "waves fold into foam .",
     "rejected": "paris ."},
]
SFT_ROWS = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in PREFS]
REWARDS_PY = '''
def even_tokens(prompts, completions, completion_ids, **kwargs):
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]
'''
# What only the lab world can say; a real run's report must never say it.
browser = test_report_browser.browser  # its Chromium fixture (Playwright + Debian chromium)
needs_chromium = test_report_browser.needs_chromium
LAB_WORDS = ("simulated", "annotator pool", "grammar", "world", "gold judge", "parse")


def cli(*args):
    torch.set_num_threads(1)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def validate(report: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(report)


def items(report: dict) -> dict[str, dict]:
    return {d["item"]: d for d in report["disclosure"]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("realaudit")
    save_model_dir(root / "llama", "llama")
    write_jsonl(root / "prefs.jsonl", PREFS)
    write_jsonl(root / "sft.jsonl", SFT_ROWS)
    write_jsonl(root / "prompts.jsonl", [{"prompt": p["prompt"]} for p in PREFS * 2])
    (root / "rewards.py").write_text(REWARDS_PY)
    return root


@pytest.fixture(scope="module")
def dpo_out(root):
    """`rlxf dpo` then `rlxf audit` through the CLI; the card's bytes before the audit."""
    out = root / "dpo"
    cli("dpo", root / "llama", root / "prefs.jsonl", "--out", out, "--steps", 2,
        "--batch-size", 2, "--beta", 0.25, "--threads", 1)
    card = (out / "README.md").read_bytes()
    cli("audit", out)
    return out, card


def test_dpo_out_is_a_run_directory_and_its_report_describes_that_dpo_run(root, dpo_out):
    out, card = dpo_out
    # OUT is still a model directory, and the audit wrote nothing into it but report/
    AutoModelForCausalLM.from_pretrained(out)
    assert resolve_model_dir(out) == out  # `rlxf serve OUT` serves it, ledger or not
    assert (out / "README.md").read_bytes() == card
    # one ledger record in rundir's format; rlxf_training.json is the same facts
    (rec,) = RunDir(out).ledger()
    sha = hashlib.sha256((root / "prefs.jsonl").read_bytes()).hexdigest()
    assert rec["stage"] == "dpo" and rec["inputs"]["data"] == {
        "file": str(root / "prefs.jsonl"), "sha256": sha, "format": "trl"}
    assert rec["counts"]["pairs"] == 3 and rec["config"]["beta"] == 0.25
    assert rec["data_facts"]["row_shapes"] == {"standard": 3}
    assert {"python", "torch", "transformers", "rlxf", "accelerate", "peft"} <= set(
        rec["versions"])
    legacy = json.loads((out / "rlxf_training.json").read_text())
    assert legacy["metrics"] == rec["metrics"] and legacy["config"] == rec["config"]
    assert legacy["data"]["sha256"] == sha and legacy["wall_s"] == rec["wall_s"]

    report = json.loads((out / "report" / "report.json").read_text())
    validate(report)
    assert report["run"]["kind"] == "real" and report["training"]["stage"] == "dpo"
    assert report["stages"][0]["stage"] == "dpo" and report["cards"] == {"dpo": "README.md"}
    d = items(report)
    example = d["example selection"]["value"]
    assert str(root / "prefs.jsonl") in example and sha[:12] in example
    assert "TRL preference format" in example and "3 preference pairs" in example
    assert "3 standard (prompt / chosen / rejected strings) rows" in example
    types = d["feedback types"]["value"]
    assert types.startswith("3 pairwise preferences") and "who judged: not disclosed" in types
    training = d["training procedure"]["value"]
    for fact in ("Direct Preference Optimisation", "beta 0.25", "2 steps", "batch 2",
                 str(root / "llama"), "full fine-tuning (no LoRA)", "saved: model"):
        assert fact in training, fact
    # who wrote the preferences: a TRL file does not say
    assert d["evaluator selection and training"]["status"] == "not disclosed"
    assert "does not say who wrote the preferences" in d["evaluator selection and training"][
        "reason"]
    assert d["loss function and disagreement modelling"]["status"] == "not applicable"
    assert d["policy evaluation and red teaming"]["status"] == "not disclosed"
    assert report["disclosure_summary"] == {
        "disclosed": sum(i["status"] == "disclosed" for i in report["disclosure"]),
        "not disclosed": sum(i["status"] == "not disclosed" for i in report["disclosure"]),
        "not applicable": 2}
    # no lab wording anywhere in the report, and none about gold in the checklist
    text = json.dumps(report).lower()
    for word in LAB_WORDS:
        assert word not in text, word
    assert "gold" not in json.dumps(report["disclosure"]).lower()
    md = (out / "report" / "report.md").read_text()
    assert "3 pairwise preferences" in md and "## Training" in md


@needs_chromium
def test_dpo_report_loads_in_chromium_without_network(browser, dpo_out):
    out, _ = dpo_out
    html = out / "report" / "index.html"
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("networkidle")
    assert requests == [html.resolve().as_uri()]  # the page itself and nothing else
    for key, title in REAL_SECTIONS:
        assert page.locator(f"section#{key} > h2").inner_text() == title
    assert page.locator(".checklist li").count() == 12
    assert "3 pairwise preferences" in page.locator("section#disclosure").inner_text()
    assert errors == []
    page.close()


def test_grpo_report_names_its_reward_source_and_held_out_points(root):
    out = root / "grpo"
    spec = f"{root / 'rewards.py'}:even_tokens"
    cli("grpo", root / "llama", root / "prompts.jsonl", "--reward", spec, "--out", out,
        "--steps", 2, "--batch-size", 2, "--group-size", 2, "--max-new-tokens", 4,
        "--eval-fraction", 0.34, "--eval-every", 1, "--eval-samples", 2, "--threads", 1)
    report = build_report(out)
    validate(report)
    sha = hashlib.sha256((root / "rewards.py").read_bytes()).hexdigest()
    history = json.loads((out / "history.json").read_text())
    assert RunDir(out).ledger()[0]["history"] == history  # the ledger holds every point
    assert [h["reward/mean"] for h in report["training"]["history"]] == pytest.approx(
        [h["reward/mean"] for h in history], rel=1e-5)
    d = items(report)
    for item in ("evaluator selection and training", "loss function and disagreement modelling",
                 "feedback types"):
        assert f"{spec} (reward function, weight 1.0, file sha256 {sha[:12]}…)" in \
            d[item]["value"], item
    assert "GRPO" in d["training procedure"]["value"]
    assert "group size 2" in d["training procedure"]["value"]
    # the held-out points, as the history recorded them
    points = report["overoptimisation"]["points"]
    assert [p["step"] for p in points] == [h["step"] for h in history] == [0, 1, 2]
    assert [p["kl"] for p in points] == pytest.approx([h["kl/to_reference"] for h in history],
                                                        rel=1e-5)
    assert all(p["reward_gold"] is None for p in points)
    ev = d["policy evaluation and red teaming"]
    assert ev["status"] == "disclosed"
    assert f"reward {history[0]['reward/mean']:.4g} → {history[-1]['reward/mean']:.4g}" in \
        ev["value"]
    assert "simulated" not in json.dumps(report).lower()


def test_sft_report_says_demonstrations_and_no_reward_model(root):
    out = root / "sft"
    cli("sft", root / "llama", root / "sft.jsonl", "--out", out, "--steps", 2,
        "--batch-size", 2, "--threads", 1)
    report = build_report(out)
    validate(report)
    d = items(report)
    assert d["feedback types"]["value"].startswith(
        "demonstrations: 3 prompt / response examples (3 prompt-completion (strings) rows)")
    assert "TRL SFT format" in d["example selection"]["value"]
    assert "supervised fine-tuning" in d["training procedure"]["value"]
    assert d["reward model evaluation and red teaming"]["status"] == "not applicable"
    assert "does not say who wrote the demonstrations" in d[
        "evaluator selection and training"]["reason"]
    assert report["feedback"]["n_judgements"] is None and report["feedback"]["notes"]


def test_a_fact_missing_from_the_ledger_reads_not_disclosed(dpo_out, tmp_path):
    out, _ = dpo_out
    (rec,) = RunDir(out).ledger()
    del rec["data_facts"], rec["inputs"]["data"]["format"]
    RunDir(tmp_path / "bare").append_ledger(rec)
    report = build_report(tmp_path / "bare")
    validate(report)
    d = items(report)
    assert d["feedback types"]["status"] == "not disclosed"
    assert "no facts about the rows" in d["feedback types"]["reason"]
    assert "format not recorded" in d["example selection"]["value"]
    assert report["cards"] == {}  # no README.md in that directory


def test_records_that_name_their_judges_are_disclosed_as_such(dpo_out):
    (rec,) = RunDir(dpo_out[0]).ledger()
    rec["inputs"]["data"]["format"] = "canonical"
    rec["data_facts"]["judged_by"] = {"human": 2, "ai": 1, "simulated": 0}
    rec["data_facts"]["responses_from"] = {"the items of rlxf annotate project 'p'": 3}
    d = {i["item"]: i for i in real_disclosure(rec)}
    assert "who judged: people (2 records) and an AI judge (1 record)" in \
        d["feedback types"]["value"]
    assert "the items of rlxf annotate project 'p' (3 records)" in d["example selection"]["value"]
    assert d["evaluator selection and training"]["status"] == "not disclosed"
    assert "how they were selected and trained is not recorded" in \
        d["evaluator selection and training"]["reason"]


def test_an_eval_run_brings_in_the_policy_directory_s_training_record(dpo_out, tmp_path):
    """The contract `rlxf eval` builds on: its record's inputs.policy names the policy dir."""
    out, _ = dpo_out
    run = tmp_path / "evalrun"
    RunDir(run).append_ledger({"stage": "eval", "inputs": {"policy": str(out)},
                               "started": "2030-01-01T00:00:00+00:00", "wall_s": 1.0,
                               "counts": {}, "metrics": {}})
    report = build_report(run)
    validate(report)
    assert [s["stage"] for s in report["stages"]] == ["dpo", "eval"]
    assert report["training"]["stage"] == "dpo" and report["training"]["dir"] != "."
    assert items(report)["training procedure"]["value"].startswith("`rlxf dpo`")
    shutil.rmtree(run)


def test_reward_and_kto_reports_describe_their_own_training(root):
    reward, kto = root / "reward", root / "kto"
    cli("reward", root / "llama", root / "prefs.jsonl", "--out", reward, "--steps", 2,
        "--batch-size", 2, "--threads", 1)
    cli("kto", root / "llama", root / "prefs.jsonl", "--out", kto, "--steps", 2,
        "--batch-size", 2, "--threads", 1)
    rm, k = build_report(reward), build_report(kto)
    for report in (rm, k):
        validate(report)
    d = items(rm)
    assert d["loss function and disagreement modelling"]["value"].startswith(
        "Bradley–Terry pairwise loss on a scalar head over " + str(root / "llama"))
    assert "3 preference pairs" in d["loss function and disagreement modelling"]["value"]
    assert d["reward model evaluation and red teaming"]["status"] == "not disclosed"
    assert d["policy evaluation and red teaming"]["status"] == "not applicable"
    assert rm["reward_model"]["loss/reward"] == pytest.approx(
        RunDir(reward).ledger()[0]["metrics"]["loss/reward"], rel=1e-5)
    d = items(k)
    assert "each of the 3 pairs split into a desirable (chosen) and an undesirable (rejected)" \
        in d["feedback types"]["value"]
    assert "KTO" in d["training procedure"]["value"]
    assert "trl (pairs split)" == RunDir(kto).ledger()[0]["inputs"]["data"]["format"]


def test_a_resumed_finish_keeps_one_ledger_line(dpo_out, tmp_path):
    """A rerun resumes an OUT.partial/ whose last attempt died after writing its record and
    before the rename: writing the record again must not leave two lines."""
    (rec,) = RunDir(dpo_out[0]).ledger()
    for _ in range(2):
        legacy = write_run_record(tmp_path, rec)
    assert RunDir(tmp_path).ledger() == [rec]
    assert json.loads((tmp_path / "rlxf_training.json").read_text()) == legacy
    assert legacy["command"] == "dpo" and legacy["data"]["pairs"] == 3
