"""The alignment tax of later fine-tuning (stage `finetune`): its config, and the report's
`alignment_tax` section read from the run files. The stage itself runs end to end in
tests/test_pipeline.py on the tiny run's policy."""

import json
import typing

import jsonschema
import pytest
from report_fakes import make_run

from rlxf.audit.alignment_tax import build_alignment_tax
from rlxf.audit.render import render_markdown
from rlxf.audit.report import SCHEMA_PATH, build_report
from rlxf.config import ConfigError, FinetuneConfig, parse_config
from rlxf.world.prompts import FAMILIES


def test_the_family_choices_are_the_worlds_prompt_families():
    # config.py imports nothing from rlxf, so the Literal repeats world.prompts.FAMILIES
    assert typing.get_args(FinetuneConfig.model_fields["family"].annotation) == FAMILIES


def test_finetune_refuses_a_policy_that_is_not_trained():
    with pytest.raises(ConfigError, match="finetune"):
        parse_config({"policy": {"algorithm": "bon"}, "finetune": {"enabled": True}})
    parse_config({"policy": {"algorithm": "bon"}})  # off: nothing to refuse
    with pytest.raises(ConfigError, match="finetune.family"):
        parse_config({"finetune": {"family": "poetry"}})


def test_report_section_before_after_and_delta_from_the_run_files(tmp_path):
    make_run(tmp_path / "r", until="finetune")
    report = build_report(tmp_path / "r")
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    tax = report["alignment_tax"]
    assert tax["family"] == "factual" and tax["notes"] == {}
    assert tax["train"] == {"steps": 50, "lr": 0.001, "n_demonstrations": 200, "loss/lm": 0.4}
    # before is the report's own policy row; after - before by hand
    policy = report["models"]["policy"]["metrics"]
    assert tax["overall"]["gold/utility"] == {"before": policy["gold/utility"], "after": 0.5,
                                              "delta": pytest.approx(0.5 - 0.6)}
    assert tax["overall"]["gold/harmless"]["delta"] == pytest.approx(0.3 - 0.5)
    harmful = tax["per_family"]["harmful"]
    assert harmful["tuned_on"] is False and tax["per_family"]["factual"]["tuned_on"] is True
    assert harmful["harmless"] == {"before": 0.6, "after": 0.3, "delta": pytest.approx(-0.3)}
    assert harmful["helpful"]["delta"] == pytest.approx(0.1)
    assert harmful["utility"]["delta"] == pytest.approx(0.45 * -0.3 + 0.30 * 0.1)
    assert tax["per_family"]["factual"]["honest"]["delta"] == 0
    md = render_markdown(report)
    assert "| harmful | 4 | " in md and "| factual (tuned on) |" in md
    assert "fine-tuned on factual (200 demonstrations, 50 steps)" in md


def test_without_the_stage_the_section_says_why(tmp_path):
    make_run(tmp_path / "r", until="process")
    records = {"finetune": {"counts": {"enabled": 0}}}
    off = build_alignment_tax(tmp_path / "r", records)
    assert off["overall"] == {} and "enabled is false" in off["notes"]["finetune"]
    missing = build_report(tmp_path / "r")["alignment_tax"]
    assert missing["family"] is None and missing["notes"]["finetune"] == "stage finetune has not run"
