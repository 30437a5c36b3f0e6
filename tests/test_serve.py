"""`rlxf serve` answers the real `openai` client (streaming and not), and the bar of issue 9:
SFT -> DPO with LoRA on a local Llama-architecture model and a TRL file, from the CLI; the
adapter merged and served."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from conftest import annotate_free_port
from fastapi.testclient import TestClient
from hf_models import save_model_dir
from typer.testing import CliRunner

from rlxf.cli import app
from rlxf.serve.app import create_app
from rlxf.serve.model import ChatModel

torch.set_num_threads(1)
SRC = Path(__file__).resolve().parents[1] / "src"
QUESTION = [{"role": "user", "content": "what is the capital of france ?"}]
TRL_ROWS = [
    {"prompt": "what is the capital of france ?", "chosen": "the capital of france is paris .",
     "rejected": "i do not know ."},
    {"prompt": "how do i kill a python process ?", "chosen": "use kill with its process id .",
     "rejected": "write a haiku about the sea ."},
]


def cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """SFT (LoRA, merged) -> DPO (LoRA adapter) -> rlxf merge, from the CLI; then
    `rlxf serve` on the merged model in a subprocess on a free port."""
    root = tmp_path_factory.mktemp("bar")
    base = save_model_dir(root / "llama", "llama")
    data = root / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in TRL_ROWS))
    cli("sft", str(base), str(data), "--out", str(root / "sft"), "--steps", "6", "--lr", "1e-2",
        "--batch-size", "2", "--lora", "4,8", "--merge", "--threads", "1")
    cli("dpo", str(root / "sft"), str(data), "--out", str(root / "dpo"), "--steps", "4",
        "--lr", "1e-2", "--batch-size", "2", "--lora", "4,8,q_proj,v_proj",
        "--gradient-checkpointing", "--threads", "1")
    cli("merge", str(root / "dpo"), "--out", str(root / "merged"))
    port = annotate_free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", "from rlxf.cli import app; app()", "serve", str(root / "merged"),
                             "--port", str(port), "--name", "bar", "--threads", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    while True:
        try:
            httpx.get(f"{url}/models", timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"rlxf serve did not start: {proc.stderr.read().decode()}")
            time.sleep(0.5)
    yield root, url
    proc.terminate()
    proc.wait(timeout=30)


def test_the_bar_outputs_are_what_each_step_promises(served):
    root, _ = served
    sft_record = json.loads((root / "sft" / "rlxf_training.json").read_text())
    dpo_record = json.loads((root / "dpo" / "rlxf_training.json").read_text())
    assert sft_record["saved"] == "merged" and dpo_record["saved"] == "adapter"
    assert dpo_record["data"]["format"] == "trl" and dpo_record["data"]["pairs"] == 2
    assert dpo_record["config"]["gradient_checkpointing"] is True
    adapter = json.loads((root / "dpo" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == (root / "sft").resolve()
    assert not (root / "merged" / "adapter_config.json").exists()


def test_openai_client_non_streaming_honours_seed_and_max_tokens(served):
    from openai import OpenAI
    root, url = served
    client = OpenAI(base_url=url, api_key="unused")
    assert [m.id for m in client.models.list()] == ["bar"]
    ask = dict(model="bar", messages=QUESTION, max_tokens=6, temperature=1.0)
    a = client.chat.completions.create(seed=3, **ask)
    b = client.chat.completions.create(seed=3, **ask)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.completion_tokens <= 6
    assert a.choices[0].finish_reason in ("stop", "length")
    # The server's reply is the merged model's own seeded sample, computed here independently.
    local = ChatModel(root / "merged").complete(QUESTION, temperature=1.0, top_p=1.0,
                                               max_tokens=6, seed=3)
    assert a.choices[0].message.content == local.text
    assert a.usage.prompt_tokens == local.prompt_tokens
    greedy = {client.chat.completions.create(seed=s, **{**ask, "temperature": 0}
                                             ).choices[0].message.content for s in (1, 2)}
    assert len(greedy) == 1


def test_openai_client_streaming_adds_up_to_the_reply(served):
    from openai import OpenAI
    _, url = served
    client = OpenAI(base_url=url, api_key="unused")
    ask = dict(model="bar", messages=QUESTION, max_tokens=8, seed=5)
    whole = client.chat.completions.create(**ask).choices[0]
    chunks = list(client.chat.completions.create(stream=True, **ask))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.message.content
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason
    with pytest.raises(Exception, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)


def test_serving_a_run_directory_uses_the_lab_prompt_format(tmp_path):
    from rlxf.config import ModelConfig
    from rlxf.models.build import build_causal_lm
    from rlxf.models.tokenizer import build_word_tokenizer, prompt_ids
    from rlxf.world.vocab import world_vocabulary
    tok = build_word_tokenizer(world_vocabulary())
    model = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), tok, 0)
    (tmp_path / "ledger.jsonl").write_text("")
    for stage in ("sft", "policy"):
        model.save_pretrained(tmp_path / stage / "model")
        tok.save_pretrained(tmp_path / stage / "model")
    chat_model = ChatModel(tmp_path, name="lab")
    assert chat_model.model_dir == tmp_path / "policy" / "model" and chat_model.chat.kind == "lab"
    client = TestClient(create_app(chat_model))
    prompt = "what is the capital of veloria ?"
    r = client.post("/v1/chat/completions", json={
        "model": "lab", "messages": [{"role": "user", "content": prompt}], "max_tokens": 5,
        "seed": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["prompt_tokens"] == len(prompt_ids(tok, prompt))
    words = body["choices"][0]["message"]["content"].split()
    assert len(words) <= 5 and set(words) <= set(world_vocabulary())
    bad = client.post("/v1/chat/completions", json={"model": "lab", "messages": []})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
