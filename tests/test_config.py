from pathlib import Path

import pytest

from rlxf.config import ConfigError, load_config, parse_config


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "run.toml")
    return str(e.value)


def test_unknown_key_names_the_key_and_what_is_allowed():
    msg = error_of({"policy": {"betta": 0.1}})
    assert "run.toml" in msg and "'policy.betta'" in msg and "beta" in msg


def test_unknown_key_inside_a_list_of_tables():
    msg = error_of({"feedback": {"annotators": [{"nme": "x"}]}})
    assert "nme" in msg and "length_bias" in msg


def test_bad_value_names_key_value_and_what_is_allowed():
    msg = error_of({"policy": {"algorithm": "sac"}})
    assert "policy.algorithm" in msg and "'sac'" in msg and "'dpo'" in msg and "'ppo'" in msg
    assert "sft.lr = -1" in error_of({"sft": {"lr": -1}})


def test_cross_field_rules():
    assert "divisible" in error_of({"pretrain": {"model": {"n_embd": 100, "n_head": 3}}})
    assert "exceeds the number of annotators" in error_of({"feedback": {"overlap": 50}})


def test_defaults_are_valid_and_the_quickstart_loads():
    assert parse_config({}).policy.algorithm == "dpo"
    cfg = load_config(Path(__file__).parents[1] / "examples" / "quickstart.toml")
    assert cfg.feedback.annotators[0].length_bias > 0


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_reference_in_docs_is_current():
    from rlxf.config_doc import markdown
    doc = Path(__file__).parents[1] / "docs" / "CONFIG.md"
    assert doc.read_text() == markdown(), "regenerate: python -m rlxf.config_doc > docs/CONFIG.md"
