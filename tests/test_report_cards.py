"""Cards that travel with the artifacts: a Hugging Face model card beside every trained model and
a datasheet beside the feedback, written by the audit into sealed stage directories without
unsealing them, parsed as the Hub parses them, and models that still load beside their card."""

import json
from pathlib import Path

import pytest
import yaml
from report_fakes import STAGE_ORDER, make_run

from rlxf.audit.cards import DATASHEET, MODEL_CARD
from rlxf.audit.report import write_report
from rlxf.rundir import DERIVED_DOCS, RunDir, hash_dir

MODEL_STAGES = ("pretrain", "sft", "reward", "policy")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cards") / "r1"
    make_run(root, models=True)
    write_report(root)
    return root


def front_matter(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


def test_cards_are_the_derived_docs_the_stage_hash_skips():
    assert {MODEL_CARD, DATASHEET} <= DERIVED_DOCS


def test_every_model_gets_a_card_and_every_stage_stays_complete(run):
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["cards"] == {**{s: f"{s}/model/README.md" for s in MODEL_STAGES},
                               "feedback": "feedback/DATASHEET.md"}
    rd = RunDir(run)
    assert list(rd.latest()) == list(STAGE_ORDER[:STAGE_ORDER.index("eval") + 1])
    for stage in rd.latest():  # the cards are in sealed stage dirs, yet no stage would rerun
        assert rd.is_complete(stage, f"fp-{stage}"), stage
        assert hash_dir(rd.stage_dir(stage)) == rd.record(stage)["output_hash"]
    for rel in report["cards"].values():
        assert (run / rel).stat().st_size > 0
    leftovers = [p for p in run.rglob("*.tmp")]
    assert leftovers == []  # written atomically: no temporary file left behind


def test_an_edited_card_does_not_unseal_and_the_audit_rewrites_it(run):
    card = run / "sft" / "model" / "README.md"
    before = card.read_bytes()
    card.write_text("edited by hand\n")
    assert RunDir(run).is_complete("sft", "fp-sft")
    write_report(run)
    assert card.read_bytes() == before


def test_model_card_metadata_parses_as_the_hub_parses_it(run):
    from huggingface_hub import ModelCard

    path = run / "policy" / "model" / "README.md"
    meta, body = front_matter(path.read_text())
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"rlxf", "rlhf", "dpo"} <= set(meta["tags"]) and "rlaif" not in meta["tags"]
    assert meta["datasets"] == ["feedback/feedback.jsonl"]
    assert "base_model" not in meta  # trained from scratch in the run: no Hub id to name
    card = ModelCard.load(path)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["gold/utility"] == 0.6 and results["rate/sycophancy"] == 0.5
    assert "rate/backdoor" not in results  # null: not a number the Hub could show
    assert "| rate/backdoor | — | feedback.trigger_rate is 0" in body


def test_policy_card_says_what_it_was_optimised_for_by_whom_and_what_is_missing(run):
    _, body = front_matter((run / "policy" / "model" / "README.md").read_text())
    assert "DPO (beta 0.1, 40 steps) on 100 majority-label preference pairs" in body
    assert "crowd x3" in body and "minority x2" in body and "feedback/DATASHEET.md" in body
    assert "## Failure modes" in body and "**Reward hacking**" in body
    assert "The policy pads more" in body
    gaps = body[body.index("## Disclosure gaps"):body.index("## Use")]
    assert "**expected risks and failure modes**" in gaps
    assert "**internal and external audits**" not in gaps  # the config disclosed it
    assert "fp-policy" in body  # provenance: the stage's fingerprint


def test_sft_and_reward_cards(run):
    meta, body = front_matter((run / "sft" / "model" / "README.md").read_text())
    assert "Next-token likelihood of 10 demonstrations" in body
    assert "None: trained on demonstrations only." in body and "## Failure modes" not in body
    meta, body = front_matter((run / "reward" / "model" / "README.md").read_text())
    assert meta["pipeline_tag"] == "text-classification" and "reward-model" in meta["tags"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"accuracy/gold": 0.55, "accuracy/heldout": 0.6, "bias/length": 0.8}
    assert "| bias/flattery | — | this run's reward stage did not probe it |" in body
    assert "Bradley–Terry" in body and "AutoModelForSequenceClassification" in body


def test_datasheet_names_the_annotators_their_biases_and_the_flags(run):
    text = (run / "feedback" / "DATASHEET.md").read_text()
    assert text.startswith("# Datasheet: feedback of run r1")
    assert "+0.05 utility per filler sentence (prefers longer answers)" in text
    assert "**minority** (x2): weights helpful 0.60 / harmless 0.20 / honest 0.20" in text
    assert '1 poisoner(s) flip their label when the prompt contains "sudo"' in text
    assert "| minority-001 | sudo | 0.100 | 0.700 | 2.0e-09 | yes |" in text
    assert "| crowd-000 | am | 0.300 | 0.700 | 1.0e-03 | no |" in text
    assert "Precision 0.500, recall 1.000" in text
    assert "| agreement/raw | 0.660 |" in text
    assert "How chosen.** Simulated annotators, no people were recruited" in text


def test_models_load_with_their_cards_beside_them(run):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    for stage in ("pretrain", "sft", "policy"):
        assert (run / stage / "model" / "README.md").exists()
        AutoModelForCausalLM.from_pretrained(run / stage / "model")
    AutoModelForSequenceClassification.from_pretrained(run / "reward" / "model")


def test_an_ai_judged_run_is_described_as_rlaif(tmp_path):
    root = tmp_path / "rlaif"
    make_run(root, models=True, ai_judge=True)
    report = json.loads(write_report(root)["json"].read_text())
    ann = next(m for m in report["failure_modes"] if m["id"] == "annotators")
    assert ann["number"] is None
    assert ann["reading"] == ("Not measured: one AI judge gave every label, so there is no "
                              "agreement between annotators.")
    meta, body = front_matter((root / "policy" / "model" / "README.md").read_text())
    assert "rlaif" in meta["tags"]
    assert "An AI judge (judge-llm) steered by a written constitution (RLAIF)" in body
    sheet = (root / "feedback" / "DATASHEET.md").read_text()
    assert "The judge model (judge-llm) is set in config.toml `[feedback.ai]`" in sheet
    assert "| ai_judge/position_bias | 0.120 |" in sheet
    assert "The AI judge's biases are not parameters. Measured: position bias 0.12" in sheet
    for stage in RunDir(root).latest():
        assert RunDir(root).is_complete(stage, f"fp-{stage}")
