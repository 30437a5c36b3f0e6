"""Bad input to the real-model commands ends in a message that names what is wrong (never a
traceback, never a stray OUT.partial/), and multi-turn SFT trains every assistant turn."""

from __future__ import annotations

import shutil

import pytest
import torch
from hf_models import save_model_dir
from test_real_models_trl import STANDARD, conversational, llama_eos_pad_dir, write_jsonl
from typer.testing import CliRunner

from rlxf.cli import app
from rlxf.config import LoraConfig, TuneDPOConfig, TuneSFTConfig
from rlxf.train.lm import lm_batch
from rlxf.tune.common import TuneError
from rlxf.tune.recipes import run_dpo, run_sft

torch.set_num_threads(1)
TINY = dict(steps=2, batch_size=2, warmup_steps=0, checkpoint_every=100)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture
def prefs(tmp_path):
    return write_jsonl(tmp_path / "prefs.jsonl", STANDARD)


def _leaves_nothing(out):
    return not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_model_dir_without_tokenizer(tmp_path, llama_dir, prefs):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in llama_dir.iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, bare / f.name)
    with pytest.raises(TuneError, match=r"bare: has no tokenizer \(none of tokenizer.json"):
        run_sft(bare, prefs, tmp_path / "out", TuneSFTConfig(**TINY))
    assert _leaves_nothing(tmp_path / "out")


@pytest.mark.parametrize("targets, named", [(["q_prj"], "'q_prj' matches"),
                                            (["q_proj", "v_prj"], "'v_prj' matches")])
def test_lora_targets_that_match_nothing_are_refused_before_any_output(tmp_path, llama_dir,
                                                                       prefs, targets, named):
    cfg = TuneDPOConfig(lora=LoraConfig(r=2, targets=targets), **TINY)
    with pytest.raises(TuneError, match=f"--lora target {named} no layer of .*; its linear "
                                        "layers: .*q_proj.*v_proj"):
        run_dpo(llama_dir, prefs, tmp_path / "out", cfg)
    assert _leaves_nothing(tmp_path / "out")


def test_a_template_without_a_system_role_is_named(tmp_path):
    model = llama_eos_pad_dir(tmp_path / "inst")
    rows = conversational(STANDARD)
    rows[1]["prompt"] = [{"role": "system", "content": "be brief ."}] + rows[1]["prompt"]
    data = write_jsonl(tmp_path / "sys.jsonl", rows)
    with pytest.raises(TuneError, match=r"sys.jsonl: example 2: the model's chat template "
                                        r"rejects a conversation with turns \[system, user.*"
                                        r"takes no system turn"):
        run_dpo(model, data, tmp_path / "out", TuneDPOConfig(**TINY))
    assert _leaves_nothing(tmp_path / "out")


def test_cli_messages_for_unknown_format_and_interrupt(tmp_path, llama_dir, prefs, monkeypatch):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["dpo", str(llama_dir), str(prefs), "--out", str(out),
                                      "--format", "nope", "--steps", "1"])
    assert result.exit_code == 1 and "--format 'nope': unknown" in result.output
    assert "Traceback" not in result.output and _leaves_nothing(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("rlxf.tune.recipes.run_dpo", interrupted)
    result = CliRunner().invoke(app, ["dpo", str(llama_dir), str(prefs), "--out", str(out)])
    assert result.exit_code == 130
    assert "out.partial keeps the last checkpoint" in " ".join(result.output.split())
    assert "rerun the same command" in " ".join(result.output.split())


def test_multi_turn_sft_trains_every_assistant_turn(tmp_path, llama_dir):
    ids, mask, labels = lm_batch([([5, 6, 7, 8, 9], [0, 1, 1, 0, 1]), ([5, 6, 7], 1)], 0)
    assert labels.tolist() == [[-100, 6, 7, -100, 9], [-100, 6, 7, -100, -100]]
    rows = [{"messages": [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "paris ."},
                          {"role": "user", "content": "are you sure ?"},
                          {"role": "assistant", "content": "i am not sure ."}]}] * 2
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    result = run_sft(llama_dir, data, tmp_path / "sft", TuneSFTConfig(lr=1e-2, **TINY))
    assert result["data"]["examples"] == 2 and result["metrics"]["loss/lm"] > 0
