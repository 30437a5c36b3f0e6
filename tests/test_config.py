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
    assert "policy.algorithm" in msg and "'sac'" in msg
    assert all(f"'{a}'" in msg for a in ("dpo", "ipo", "cdpo", "robust", "kto", "grpo", "rloo",
                                         "ppo", "bon"))
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


def test_policy_algorithm_options_are_checked_against_each_other():
    assert "grpo, rloo or ppo" in error_of({"policy": {"algorithm": "dpo",
                                                       "reward": "worst_case"}})
    assert "grpo or rloo" in error_of({"policy": {"algorithm": "ppo", "reward": "ai_judge"}})
    assert "grpo or rloo" in error_of({"policy": {"algorithm": "ppo",
                                                  "safe": {"cost_threshold": 0.0}},
                                       "reward": {"aspects": True}})
    assert "updates_per_rollout" in error_of(
        {"policy": {"algorithm": "rloo", "group": {"updates_per_rollout": 2}}})
    assert "[reward] ensemble >= 2" in error_of(
        {"policy": {"algorithm": "grpo", "reward": "mean_minus_std"}})
    for algorithm in ("grpo", "ppo"):
        assert parse_config({"policy": {"algorithm": algorithm, "reward": "mean_minus_std"},
                             "reward": {"ensemble": 3}}).policy.reward == "mean_minus_std"
    assert "label_smoothing" in error_of({"policy": {"algorithm": "cdpo",
                                                     "label_smoothing": 0.5}})


def test_safe_rl_without_the_aspect_cost_model_is_a_config_error():
    # No rule-based stand-in for the cost: without the harmless head it fails before any work.
    msg = error_of({"policy": {"algorithm": "grpo", "safe": {"cost_threshold": 0.0}}})
    assert "[reward] aspects" in msg
    assert parse_config({"policy": {"algorithm": "grpo", "safe": {"cost_threshold": 0.0}},
                         "reward": {"aspects": True}}).policy.safe.cost_threshold == 0.0
