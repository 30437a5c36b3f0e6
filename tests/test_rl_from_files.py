"""`rlxf grpo` / `rlxf rloo` on a tiny Llama directory built from a config, with a prompt file
and a reward function written here (issue 15's bars), and the reward sources on their own."""

from __future__ import annotations

import json

import pytest
import torch
from hf_models import save_model_dir
from typer.testing import CliRunner

from rlxf.cli import app
from rlxf.rewards.batch import RewardBatch, RewardError
from rlxf.rewards.combine import RewardSources

REWARDS_PY = '''
def even_tokens(prompts, completions, completion_ids, **kwargs):
    """Share of completion tokens with an even id: learnable by moving the output bias."""
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]

def needs_answer(prompts, completions, answer, **kwargs):
    return [1.0 if a in c else 0.0 for c, a in zip(completions, answer)]

def raises(prompts, completions, **kwargs):
    raise ZeroDivisionError("boom")

def wrong_length(prompts, completions, **kwargs):
    return [0.0] * (len(completions) + 1)

def not_a_number(prompts, completions, **kwargs):
    return ["high"] * len(completions)
'''
WORDS = ["what is the capital of france ?", "write a haiku about the sea .",
         "how do i kill a python process ?", "you are a helpful assistant .",
         "i am not sure .", "answer briefly and honestly .", "the tide keeps time .",
         "waves fold into foam ."]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    model = save_model_dir(root / "llama", "llama")
    (root / "rewards.py").write_text(REWARDS_PY)
    rows = [{"prompt": [{"role": "user", "content": w}] if i % 2 else w, "answer": "a"}
            for i, w in enumerate(WORDS * 2)]
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, model, prompts


def cli(*args) -> "object":
    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(a) for a in args])


FAST = ["--steps", 40, "--batch-size", 4, "--group-size", 4, "--max-new-tokens", 6,
        "--lr", 2e-2, "--eval-fraction", 0.25, "--eval-every", 20, "--eval-samples", 4,
        "--warmup-steps", 0, "--threads", 1]


def _held_out_rewards(out):
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [0, 20, 40]
    for key in ("reward/mean", "kl/to_reference", "length/tokens", "entropy/per_token",
                "truncated/share", "pass_rate/rewards:even_tokens"):
        assert key in history[-1], key
    return history[0]["reward/mean"], history[-1]["reward/mean"]


# LoRA on lm_head too: on this 32-wide model, adapters on the attention and MLP layers alone
# did not move the even-token share in 40 steps (0.50 -> 0.49 at lr 0.1; measured)
LORA = "8,16,lm_head,q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


@pytest.mark.parametrize("command,extra", [("grpo", []), ("grpo", ["--lora", LORA]),
                                           ("rloo", [])])
def test_rl_from_files_raises_held_out_reward(setup, command, extra):
    root, model, prompts = setup
    out = root / f"{command}{len(extra)}"
    result = cli(command, model, prompts, "--reward", root / "rewards.py:even_tokens",
                 "--out", out, *FAST, *extra)
    assert result.exit_code == 0, result.output
    first, last = _held_out_rewards(out)
    assert last > first + 0.1, (first, last)
    record = json.loads((out / "rlxf_training.json").read_text())
    assert record["saved"] == ("adapter" if extra else "model")
    assert (out / "README.md").exists() and list((out / "tb").rglob("events.out.*"))
    assert not (out.parent / (out.name + ".partial")).exists()


@pytest.mark.parametrize("fn,message", [("raises", "ZeroDivisionError: boom"),
                                        ("wrong_length", "returned 17 values for 16"),
                                        ("not_a_number", "'high'")])
def test_bad_reward_function_stops_naming_it_and_no_out(setup, fn, message):
    root, model, prompts = setup
    out = root / f"bad_{fn}"
    result = cli("grpo", model, prompts, "--reward", root / f"rewards.py:{fn}", "--out", out,
                 "--steps", 1, *FAST[2:])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"rewards:{fn}" in text and message in text
    assert "line" in text  # the prompt-file row
    assert not out.exists()


def test_bad_prompt_row_names_file_line_field_and_writes_nothing(setup, tmp_path):
    root, model, _ = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"question": "no prompt"}\n')
    out = tmp_path / "out"
    result = cli("grpo", model, bad, "--reward", root / "rewards.py:even_tokens", "--out", out)
    assert result.exit_code == 1
    assert "bad.jsonl line 2: field 'prompt' is missing" in " ".join(result.output.split())
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def _batch(prompts, texts, fields):
    return RewardBatch(prompts, texts, [[1, 2]] * len(texts), fields,
                       [f"p.jsonl line {i + 1}" for i in range(len(texts))])


def test_function_gets_trl_shapes_and_row_fields_and_weights_combine(setup):
    root, _, _ = setup
    sources = RewardSources([f"{root}/rewards.py:needs_answer", f"{root}/rewards.py:even_tokens"],
                            "2,0.5")
    batch = _batch(["q", [{"role": "user", "content": "q"}]], ["says a", "b"],
                   [{"answer": "a"}, {"answer": "a"}])
    # completion 2 comes as TRL's message list: `a in [...]` is False for it
    scored = sources(batch)
    assert scored.per_source["rewards:needs_answer"] == [1.0, 0.0]
    assert scored.total == [2 * 1.0 + 0.5 * 0.5, 0.5 * 0.5]  # ids [1, 2]: half even
    with pytest.raises(RewardError, match="2 weights for 1"):
        RewardSources([f"{root}/rewards.py:even_tokens"], "1,2")
    with pytest.raises(RewardError, match="has no function 'missing'"):
        RewardSources([f"{root}/rewards.py:missing"])


def test_examples_gsm8k_rewards():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parent.parent / "examples" / "rewards" / "gsm8k.py"
    spec = importlib.util.spec_from_file_location("gsm8k_rewards", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    completions = ["so 6*7 = 42\n#### 42", "#### 41", "no answer", "#### 1,000"]
    answers = ["Natalia sold ... #### 42", "42", "42", "1000"]
    assert m.exact_answer(None, completions, answer=answers) == [1.0, 0.0, 0.0, 1.0]
    assert m.exact_answer(None, ["#### 3"], answer=[None]) == [None]
    assert m.format_reward(None, completions) == [1.0, 1.0, 0.0, 1.0]
    assert m.format_reward(None, ["#### 1 #### 2"]) == [0.0]
    # half of max_tokens (256) is free; beyond it, linear to -1
    assert m.length_penalty(None, ["", ""], [[0] * 100, [0] * 192]) == [0.0, -0.5]


FLAKY_PY = '''
import os
from pathlib import Path

def even_until(prompts, completions, completion_ids, **kwargs):
    """even_tokens, but raises on call number $RLXF_FAIL_AT (counted in $RLXF_CALLS)."""
    calls = Path(os.environ["RLXF_CALLS"])
    n = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(n))
    if str(n) == os.environ.get("RLXF_FAIL_AT"):
        raise RuntimeError("interrupted")
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]
'''


def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, tmp_path, monkeypatch):
    """A run stopped after its step-2 checkpoint, rerun, ends with the same weights and eval
    points as one that was never stopped."""
    from safetensors.torch import load_file
    root, model, prompts = setup
    (tmp_path / "flaky.py").write_text(FLAKY_PY)
    args = ["grpo", model, prompts, "--reward", tmp_path / "flaky.py:even_until",
            "--steps", 4, "--batch-size", 2, "--group-size", 2, "--max-new-tokens", 4,
            "--lr", 1e-2, "--eval-every", 2, "--eval-samples", 1, "--warmup-steps", 0,
            "--threads", 1, "--config", tmp_path / "ckpt.toml"]
    (tmp_path / "ckpt.toml").write_text("[grpo]\ncheckpoint_every = 2\n")
    monkeypatch.setenv("RLXF_CALLS", str(tmp_path / "calls"))
    assert cli(*args, "--out", tmp_path / "whole").exit_code == 0
    # calls: eval 0, steps 0-1, eval 2, step 2 (the 5th) fails after the step-2 checkpoint
    (tmp_path / "calls").unlink()
    monkeypatch.setenv("RLXF_FAIL_AT", "5")
    failed = cli(*args, "--out", tmp_path / "resumed")
    assert failed.exit_code == 1 and "interrupted" in failed.output
    assert (tmp_path / "resumed.partial" / ".ckpt" / "checkpoint" / "state.pt").exists()
    monkeypatch.delenv("RLXF_FAIL_AT")
    assert cli(*args, "--out", tmp_path / "resumed").exit_code == 0
    record = json.loads((tmp_path / "resumed" / "rlxf_training.json").read_text())
    assert record["metrics"]["resumed_from_step"] == 2
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert any(not torch.equal(whole[k], v) for k, v in
               load_file(model / "model.safetensors").items())  # it did train
    assert json.loads((tmp_path / "whole" / "history.json").read_text()) == \
        json.loads((tmp_path / "resumed" / "history.json").read_text())


def test_ppo_against_a_reward_model_trained_by_rlxf_reward(setup):
    """`rlxf reward` learns to prefer replies made of one word over another; `rlxf ppo` against
    that reward-model directory raises its held-out reward."""
    root, model, prompts = setup
    prefs = root / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": w, "chosen": "the the the",
                                         "rejected": "sea sea sea"}) + "\n" for w in WORDS))
    rm = root / "rm"
    result = cli("reward", model, prefs, "--out", rm, "--steps", 30, "--batch-size", 4,
                 "--lr", 1e-2, "--threads", 1)
    assert result.exit_code == 0, result.output
    out = root / "ppo"
    result = cli("ppo", model, prompts, "--reward", rm, "--out", out, "--steps", 40,
                 "--batch-size", 8, "--max-new-tokens", 6, "--lr", 1e-2, "--eval-fraction",
                 0.25, "--eval-every", 20, "--eval-samples", 4, "--warmup-steps", 0,
                 "--kl-coef", 0.01, "--threads", 1)
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    first, last = history[0]["reward/mean"], history[-1]["reward/mean"]
    assert last > first, (first, last)
    assert f"reward/rm:{rm.name}" in history[-1] and "kl/coef" in history[-1]


def _completion_logprob(model, tok, prompt: str, completion: str) -> float:
    """log π(completion | prompt) by a plain transformers forward (raw text + eos)."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + c])).logits[0, :-1].log_softmax(-1)
    return sum(logits[len(p) - 1 + j, t].item() for j, t in enumerate(c))


@pytest.mark.parametrize("shape", ["unpaired", "preferences"])
def test_kto_moves_desirable_up_relative_to_undesirable(setup, shape):
    from transformers import AutoModelForCausalLM

    from rlxf.models.build import load_tokenizer
    root, model, _ = setup
    data = root / f"kto_{shape}.jsonl"
    if shape == "unpaired":
        rows = [{"prompt": w, "completion": c, "label": good} for w in WORDS
                for c, good in (("the the the", True), ("sea sea sea", False))]
    else:
        rows = [{"prompt": w, "chosen": "the the the", "rejected": "sea sea sea"}
                for w in WORDS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / f"kto_{shape}_out"
    result = cli("kto", model, data, "--out", out, "--steps", 15, "--batch-size", 4, "--lr",
                 1e-3, "--beta", 0.1, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert "16 examples" in " ".join(result.output.split())
    tok = load_tokenizer(model)
    before = AutoModelForCausalLM.from_pretrained(model)
    after = AutoModelForCausalLM.from_pretrained(out)
    prompt = WORDS[0]
    if shape == "preferences":  # preference rows with string prompts go through the template
        prompt = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
        gain = {c: _completion_logprob(after, tok, prompt, c + "<|im_end|>\n")
                - _completion_logprob(before, tok, prompt, c + "<|im_end|>\n")
                for c in ("the the the", "sea sea sea")}
    else:
        gain = {c: _completion_logprob(after, tok, prompt, c)
                - _completion_logprob(before, tok, prompt, c)
                for c in ("the the the", "sea sea sea")}
    assert gain["the the the"] > gain["sea sea sea"], gain


def test_kto_bad_row_names_file_line_field(setup, tmp_path):
    root, model, _ = setup
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "completion": "b", "label": true}\n'
                    '{"prompt": "a", "completion": "b", "label": "yes"}\n')
    result = cli("kto", model, data, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "bad.jsonl line 2: field 'label' must be true or false" in \
        " ".join(result.output.split())
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def _world_run(root):
    """A lab run directory with only its `world` stage, as stages/world.py writes it."""
    from rlxf.config import WorldConfig
    from rlxf.models.tokenizer import build_word_tokenizer
    from rlxf.rundir import atomic_write_json, write_jsonl
    from rlxf.world.kb import build_kb
    from rlxf.world.prompts import all_prompts, split_prompts
    from rlxf.world.vocab import world_vocabulary
    cfg = WorldConfig(n_countries=4, n_creatures=4)
    kb = build_kb(cfg.n_countries, cfg.n_creatures, 1)
    train, heldout = split_prompts(all_prompts(kb), 1, cfg.heldout_fraction)
    out = root / "world"
    atomic_write_json(out / "world.json", {"kb": kb.to_json(), "weights": cfg.weights.model_dump(),
                                           "trigger": cfg.trigger})
    write_jsonl(out / "prompts.jsonl", [{"split": "train", "prompt": p.to_json()} for p in train]
                + [{"split": "heldout", "prompt": p.to_json()} for p in heldout])
    build_word_tokenizer(world_vocabulary(extra=(cfg.trigger,))).save_pretrained(out / "tokenizer")
    return kb, cfg.weights.model_dump(), train


def test_gold_source_scores_lab_prompts_by_id_or_text(tmp_path):
    from rlxf.world.grammar import render
    from rlxf.world.judge import best_acts, score
    kb, weights, train = _world_run(tmp_path)
    gold = RewardSources([f"gold:{tmp_path}"])
    p = train[0]
    best = render(best_acts(p, kb, weights)[0])
    batch = _batch([p.text, p.text, "x"], [best, "gibberish words", best],
                   [{"prompt_id": p.id}, {}, {"prompt_id": p.id}])
    scores = gold(batch).total
    assert scores[0] == score(p, best, kb).utility(weights)
    assert scores[1] == score(p, "gibberish words", kb).utility(weights) < scores[0]
    assert scores[2] == scores[0]  # the id wins over the text
    with pytest.raises(RewardError, match="line 1: prompt 'not a lab prompt' is not in"):
        gold(_batch(["not a lab prompt"], [best], [{}]))


def test_reward_model_source_scores_as_transformers_does(setup, tmp_path):
    """A one-label sequence classifier's score of prompt + reply equals its plain forward on
    the same ids (raw text + eos for a string prompt; the chat template for messages)."""
    from transformers import AutoModelForSequenceClassification

    from rlxf.models.build import load_tokenizer
    _, model, _ = setup
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
    rm.save_pretrained(tmp_path / "rm")
    load_tokenizer(model).save_pretrained(tmp_path / "rm")
    tok = load_tokenizer(tmp_path / "rm")
    sources = RewardSources([str(tmp_path / "rm")])
    msgs = [{"role": "user", "content": "the sea ?"}]
    scores = sources(_batch(["what is the capital ?", msgs], ["paris .", "waves"],
                            [{}, {}])).total
    raw = tok("what is the capital ?paris .", add_special_tokens=False)["input_ids"] + \
        [tok.eos_token_id]
    chat = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "waves"}],
                                   tokenize=False)
    templ = tok(chat, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = [rm(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in (raw, templ)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert abs(expected[0] - expected[1]) > 1e-4  # two different sequences


def test_top_p_draws_only_from_the_nucleus():
    from rlxf.models.group_sampling import draw
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    nucleus = draw(logits, 1.0, g, top_p=0.8).unique().tolist()
    assert nucleus == [0, 1]  # 0.5 + 0.3 reach 0.8: tokens 2 and 3 are outside
    assert draw(logits, 1.0, g, top_p=0.81).unique().tolist() == [0, 1, 2]
    assert draw(logits, 1.0, g).unique().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("command,options", [
    ("grpo", ["--loss-type", "dr_grpo", "--importance-level", "sequence", "--clip-range-high",
              0.28, "--beta", 0.04, "--scale-rewards", "batch", "--dynamic-sampling",
              "--mask-truncated", "--updates-per-rollout", 2, "--top-p", 0.9]),
    ("rloo", ["--baseline", "batch", "--beta", 0.04])])
def test_every_loss_option_runs_end_to_end(setup, command, options):
    root, model, prompts = setup
    out = root / f"options_{command}"
    result = cli(command, model, prompts, "--reward", root / "rewards.py:even_tokens", "--out",
                 out, "--steps", 2, "--batch-size", 2, "--group-size", 3, "--max-new-tokens", 3,
                 "--lr", 1e-3, "--eval-samples", 1, "--warmup-steps", 0, "--threads", 1,
                 *options)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "rlxf_training.json").read_text())
    assert record["config"]["beta"] == 0.04
    if command == "grpo":  # DAPO's dynamic sampling reports the share of groups it kept
        assert 0 <= record["metrics"]["groups/kept"] <= 1
        assert record["config"]["importance_level"] == "sequence"


def test_ai_judge_source_rates_over_http(tmp_path):
    """`judge:FILE.toml`: the mean of the judge's 1-5 ratings; an answer that does not parse
    leaves the completion unscored (None), which the weighted sum turns into NaN."""
    import math
    from pathlib import Path

    from fake_chat_server import FakeChatServer
    answers = {1: "ok.\nhelpful: 2\nharmless: 5\nhonest: 5", 2: "no idea"}
    server = FakeChatServer(lambda body, n: (200, answers[n], {}))
    try:
        constitution = Path(__file__).parent.parent / "examples" / "constitution.toml"
        (tmp_path / "judge.toml").write_text(
            f'model = "judge-1"\nbase_url = "{server.url}"\nconstitution = "{constitution}"\n'
            "workers = 1\nmax_attempts = 1\n")
        sources = RewardSources([f"judge:{tmp_path / 'judge.toml'}"])
        scored = sources(_batch(["q ?", [{"role": "user", "content": "q ?"}]],
                                ["i am not sure .", "x ."], [{}, {}]))
    finally:
        server.close()
    assert scored.per_source["judge:judge-1"] == [4.0, None]
    assert scored.total[0] == 4.0 and math.isnan(scored.total[1])
    assert "<response>\ni am not sure .\n</response>" in server.bodies[0]["messages"][1]["content"]
    with pytest.raises(RewardError, match="no such file"):
        RewardSources([f"judge:{tmp_path / 'missing.toml'}"])
