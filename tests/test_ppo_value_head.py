"""`rlxf ppo`'s value head (tune/value_head.py): saved beside the policy as
OUT/value_head.safetensors (with LoRA: beside the adapter), restored exactly by a run killed with
SIGKILL and rerun, and loaded back by `--value-head` (checked against the model's hidden size)."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch
from hf_models import save_model_dir
from safetensors.torch import load_file, save_file
from tiny_runs import rlxf, rlxf_started
from typer.testing import CliRunner

from rlxf.cli import app

REWARDS_PY = '''
def even_tokens(prompts, completions, completion_ids, **kwargs):
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]
'''
WORDS = ["what is the capital of france ?", "write a haiku about the sea .",
         "you are a helpful assistant .", "i am not sure .", "the tide keeps time .",
         "waves fold into foam ."]
HIDDEN = 32  # tests/hf_models.py's hidden_size
LORA = "4,8,q_proj,v_proj"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo_value")
    model = save_model_dir(root / "llama", "llama")
    (root / "rewards.py").write_text(REWARDS_PY)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": w}) + "\n" for w in WORDS * 2))
    return root, model, prompts


def ppo_args(root, model, prompts, out, steps=3):
    return ["ppo", model, prompts, "--reward", root / "rewards.py:even_tokens", "--out", out,
            "--steps", steps, "--batch-size", 4, "--max-new-tokens", 4, "--lr", 1e-2,
            "--eval-fraction", 0.2, "--eval-every", 2, "--eval-samples", 1,
            "--warmup-steps", 0, "--threads", 1]


def cli(*args):
    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_saved_head_gives_the_same_values_and_reads_the_last_hidden_state(setup, tmp_path):
    """Saved and read back into a fresh PolicyWithValue, the head gives bit-identical values
    on the same batch; and those values are weight · h + bias on a plain transformers
    forward's last hidden state at the token before each response token (float64, 1e-6)."""
    from transformers import AutoModelForCausalLM

    from rlxf.models.logprobs import response_batch
    from rlxf.train.ppo import PolicyWithValue, on_responses, response_columns
    from rlxf.tune.value_head import FILE, load_into, read_value_head, save_value_head
    _, model_dir, _ = setup
    prompts, responses = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]]
    ids, mask, _ = response_batch(prompts, responses, 0)
    index, rmask = response_columns(prompts, responses)

    torch.manual_seed(3)
    trained = PolicyWithValue(AutoModelForCausalLM.from_pretrained(model_dir)).eval()
    torch.nn.init.normal_(trained.value_head.weight)
    torch.nn.init.normal_(trained.value_head.bias)
    record = save_value_head(trained.value_head, tmp_path)
    assert record["module"] == f"Linear({HIDDEN}, 1)" and record["initialised_from"] == "zeros"

    fresh = PolicyWithValue(AutoModelForCausalLM.from_pretrained(model_dir)).eval()
    tensors, source = read_value_head(tmp_path, HIDDEN)  # a directory: its value_head file
    assert source["file"] == str((tmp_path / FILE).resolve())
    load_into(fresh.value_head, tensors)
    with torch.no_grad():
        before, after = trained(ids, mask)[1], fresh(ids, mask)[1]
    assert torch.equal(before, after)
    assert after.abs().max() > 0  # not the zero head a fresh PolicyWithValue starts with

    plain = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        h = plain(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        # the model's output after its final norm, as tune/value_head.py's READS says
        assert torch.equal(h, plain.model(input_ids=ids, attention_mask=mask).last_hidden_state)
    w, b = tensors["weight"].double(), tensors["bias"].double()
    for i, (p, r) in enumerate(zip(prompts, responses)):
        expected = h[i, len(p) - 1: len(p) - 1 + len(r)].double() @ w[0] + b[0]
        got = on_responses(after, index, rmask)[i, :len(r)].double()
        assert torch.allclose(got, expected, atol=1e-6), (got, expected)


@pytest.mark.parametrize("case", ["wrong_size", "wrong_keys", "missing", "not_safetensors"])
def test_a_bad_value_head_stops_naming_the_file_before_out_exists(setup, tmp_path, case):
    root, model, prompts = setup
    head = tmp_path / "value_head.safetensors"
    if case == "wrong_size":
        save_file({"weight": torch.zeros(1, 16), "bias": torch.zeros(1)}, str(head))
        message = f"'weight' has shape [1, 16], but the model's hidden_size is {HIDDEN}"
    elif case == "wrong_keys":
        save_file({"summary.weight": torch.zeros(1, HIDDEN)}, str(head))
        message = "expected the tensors 'weight' and 'bias' of a value head, found 'summary.weight'"
    elif case == "not_safetensors":
        head.write_text("not a tensor file")
        message = "not a safetensors file"
    else:
        message = "no value head there"
    out = tmp_path / "out"
    result = cli(*ppo_args(root, model, prompts, out), "--value-head", tmp_path)
    assert result.exit_code == 1, result.output
    text = "".join(result.output.split())  # the console wraps long paths
    assert str(head).replace(" ", "") in text and message.replace(" ", "") in text
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_lora_saves_adapter_and_value_head_and_a_run_starts_from_that_head(setup, tmp_path):
    """--lora: OUT holds the adapter and the trained value head (no full model); the record
    and card say so. `--value-head OUT` starts the next run's critic from it: with the value
    loss weighted 0 the head gets no update, so the saved head comes out bit-identical."""
    root, model, prompts = setup
    first = tmp_path / "lora"
    result = cli(*ppo_args(root, model, prompts, first), "--lora", LORA)
    assert result.exit_code == 0, result.output
    assert {"adapter_config.json", "adapter_model.safetensors", "value_head.safetensors"} <= \
        {p.name for p in first.iterdir()}
    assert not (first / "model.safetensors").exists()
    record = json.loads((first / "rlxf_training.json").read_text())
    assert record["saved"] == "adapter"
    assert record["value_head"]["module"] == f"Linear({HIDDEN}, 1)"
    assert record["value_head"]["initialised_from"] == "zeros"
    ledger = json.loads((first / "ledger.jsonl").read_text())
    assert ledger["output"]["value_head"] == record["value_head"]
    from rlxf.audit.real_facts import real_disclosure  # what `rlxf audit OUT` discloses
    training = {e["item"]: e for e in real_disclosure(ledger)}["training procedure"]["value"]
    assert (f"saved: adapter and its value head value_head.safetensors (Linear({HIDDEN}, 1) "
            "on the last hidden state, initialised from zeros)") in training
    card = (first / "README.md").read_text()
    assert "## Value head" in card and f"Linear({HIDDEN}, 1)" in card
    saved = load_file(first / "value_head.safetensors")
    assert saved["weight"].shape == (1, HIDDEN) and saved["bias"].shape == (1,)
    assert saved["weight"].abs().max() > 0  # the critic trained (it starts at zero)

    second = tmp_path / "continued"
    result = cli(*ppo_args(root, model, prompts, second, steps=2), "--value-head", first,
                 "--vf-coef", 0)
    assert result.exit_code == 0, result.output
    continued = load_file(second / "value_head.safetensors")
    assert all(torch.equal(saved[k], continued[k]) for k in saved)
    init = json.loads((second / "rlxf_training.json").read_text())["value_head"][
        "initialised_from"]
    assert init["file"] == str((first / "value_head.safetensors").resolve())
    import hashlib
    assert init["sha256"] == hashlib.sha256(
        (first / "value_head.safetensors").read_bytes()).hexdigest()


def test_lora_merge_saves_the_merged_model_and_the_value_head(setup, tmp_path):
    root, model, prompts = setup
    out = tmp_path / "merged"
    result = cli(*ppo_args(root, model, prompts, out, steps=1), "--lora", LORA, "--merge")
    assert result.exit_code == 0, result.output
    assert "merged + value head" in " ".join(result.output.split())
    assert json.loads((out / "rlxf_training.json").read_text())["saved"] == "merged"
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    assert load_file(out / "value_head.safetensors")["weight"].shape == (1, HIDDEN)


def test_kill_9_mid_run_then_resume_gives_the_same_policy_and_value_head(setup, tmp_path):
    """`rlxf ppo` killed with SIGKILL once a checkpoint is on disk and rerun ends with the
    policy, the value head and the eval points of a run that was never interrupted."""
    root, model, prompts = setup
    (tmp_path / "ckpt.toml").write_text("[ppo]\ncheckpoint_every = 2\n")
    args = ppo_args(root, model, prompts, "OUT", steps=6) + ["--config", tmp_path / "ckpt.toml"]

    def run_args(out):
        return [out if a == "OUT" else a for a in args]

    rlxf(*run_args(tmp_path / "whole"))
    resumed = tmp_path / "resumed"
    with rlxf_started(*run_args(resumed)) as proc:
        state = resumed.with_name("resumed.partial") / ".ckpt" / "checkpoint" / "state.pt"
        deadline = time.time() + 300
        while not state.exists() and proc.running() and time.time() < deadline:
            time.sleep(0.01)
        assert proc.running(), "the run ended before its first checkpoint appeared"
        assert proc.kill().returncode == -signal.SIGKILL
    assert not resumed.exists()
    rlxf(*run_args(resumed))
    record = json.loads((resumed / "rlxf_training.json").read_text())
    assert record["metrics"]["resumed_from_step"] > 0
    for name in ("model.safetensors", "value_head.safetensors"):
        whole, again = load_file(tmp_path / "whole" / name), load_file(resumed / name)
        assert whole.keys() == again.keys()
        assert all(torch.equal(whole[k], again[k]) for k in whole), name
    assert load_file(resumed / "value_head.safetensors")["weight"].abs().max() > 0
    assert json.loads((tmp_path / "whole" / "history.json").read_text()) == \
        json.loads((resumed / "history.json").read_text())
