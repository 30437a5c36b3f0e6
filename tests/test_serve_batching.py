"""`rlxf serve` batching (issue 14 item 8): 8 concurrent clients share one batch, and each reply
is the reply its request gets alone -- greedy replies token for token against plain
transformers' `generate` on the prompt alone (tiny GPT-2 and Llama, prompts of different lengths:
left padding, the attention mask and position ids), seeded samples against the same request
served alone; n > 1; stop strings; OpenAI error envelopes."""

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from conftest import annotate_free_port
from fastapi.testclient import TestClient
from hf_models import build_tokenizer, model_config
from transformers import AutoModelForCausalLM

from rlxf.serve.app import create_app
from rlxf.serve.model import ChatModel

torch.set_num_threads(1)
CLIENTS = 8
# Prompts of 3 to 60 tokens, so the batch is left-padded by up to ~57 positions.
QUESTIONS = ["hi", "what is the capital of france ?", "write a haiku about the sea .",
             "how do i kill a python process ? " * 2, "you are a helpful assistant . " * 3,
             "i am not sure .", "the tide keeps time , waves fold into foam . " * 3, "paris ?"]


def varied_model_dir(path: Path, arch: str) -> Path:
    """A tiny random `arch` model with weights large enough that its greedy replies depend on
    the prompt (the default 0.02 init answers every prompt alike), so a wrong mask or position
    shows up as a different reply."""
    tok = build_tokenizer()
    cfg = model_config(arch, tok)
    cfg.initializer_range = 0.5
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@contextmanager
def http_server(app):
    port = annotate_free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def concurrently(url: str, bodies: list[dict]) -> list[dict]:
    """POST every body at once, one client thread each; the replies in order."""
    start, replies = threading.Barrier(len(bodies)), [None] * len(bodies)

    def client(i):
        start.wait()
        r = httpx.post(f"{url}/chat/completions", json=bodies[i], timeout=120)
        assert r.status_code == 200, r.text
        replies[i] = r.json()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(replies), "a client failed"
    return replies


def ask(question: str, **params) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": question}], **params}


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request, tmp_path_factory):
    return varied_model_dir(tmp_path_factory.mktemp(request.param) / "model", request.param)


def serve_model(model_dir, max_batch=CLIENTS, window_s=10.0) -> ChatModel:
    # A long window: the batch closes when all 8 clients are in it, not by the clock.
    return ChatModel(model_dir, "tiny", device="cpu", precision="fp32", max_batch=max_batch,
                     window_s=window_s)


def test_eight_concurrent_greedy_replies_equal_transformers_alone(model_dir):
    model = serve_model(model_dir)
    max_tokens = [6 + 2 * i for i in range(CLIENTS)]  # per-request lengths in one batch
    with http_server(create_app(model)) as url:
        replies = concurrently(url, [ask(q, temperature=0, max_tokens=m)
                                     for q, m in zip(QUESTIONS, max_tokens)])
    assert model.scheduler.batch_sizes == [CLIENTS]  # all eight shared every forward pass
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompt_lengths = set()
    for question, m, reply in zip(QUESTIONS, max_tokens, replies):
        prompt = model.prompt_ids([{"role": "user", "content": question}])
        prompt_lengths.add(len(prompt))
        alone = reference.generate(input_ids=torch.tensor([prompt]), do_sample=False,
                                   attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   max_new_tokens=m, eos_token_id=model.chat.stop_ids,
                                   pad_token_id=model.tokenizer.pad_token_id)[0, len(prompt):]
        ids = alone.tolist()
        if any(t in model.chat.stop_ids for t in ids):
            ids = ids[: next(i for i, t in enumerate(ids) if t in model.chat.stop_ids) + 1]
        choice = reply["choices"][0]
        assert choice["message"]["content"] == model.chat.decode(ids)
        assert reply["usage"]["completion_tokens"] == len(ids)
        assert reply["usage"]["prompt_tokens"] == len(prompt)
        assert choice["finish_reason"] == ("stop" if ids[-1] in model.chat.stop_ids else "length")
    assert len(prompt_lengths) >= 6  # different lengths really were padded together
    assert len({r["choices"][0]["message"]["content"] for r in replies}) >= 6  # not all alike


def test_seeded_samples_in_a_mixed_batch_equal_the_same_request_alone(model_dir):
    # Half the clients sample (different temperatures, top_p, seeds), half are greedy: the
    # settings differ row by row inside one batch.
    bodies = [ask(q, max_tokens=8, seed=100 + i, temperature=(0, 0.7, 1.0, 1.3)[i % 4],
                  top_p=(1.0, 0.9)[i % 2]) for i, q in enumerate(QUESTIONS)]
    batched = serve_model(model_dir)
    with http_server(create_app(batched)) as url:
        together = concurrently(url, bodies)
    assert batched.scheduler.batch_sizes == [CLIENTS]
    client = TestClient(create_app(serve_model(model_dir, max_batch=1, window_s=0)))
    alone = [client.post("/v1/chat/completions", json=b).json() for b in bodies]
    assert [r["choices"] for r in together] == [r["choices"] for r in alone]
    assert [r["usage"] for r in together] == [r["usage"] for r in alone]


def test_n_choices_run_in_one_batch_and_choice_0_is_the_single_reply(model_dir):
    model = serve_model(model_dir, window_s=0)
    client = TestClient(create_app(model))
    body = ask(QUESTIONS[1], max_tokens=8, seed=7, temperature=2.0)  # peaked model: sample wide
    three = client.post("/v1/chat/completions", json={**body, "n": 3}).json()
    assert [c["index"] for c in three["choices"]] == [0, 1, 2]
    assert model.scheduler.batch_sizes == [3]
    texts = [c["message"]["content"] for c in three["choices"]]
    assert len(set(texts)) == 3  # different draws
    one = client.post("/v1/chat/completions", json=body).json()
    assert one["choices"][0]["message"]["content"] == texts[0]
    assert three["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]
    greedy = client.post("/v1/chat/completions",
                         json={**body, "n": 2, "temperature": 0}).json()["choices"]
    assert greedy[0]["message"] == greedy[1]["message"]
    # Streamed, each index's pieces add up to the non-streamed choice with the same seed.
    with client.stream("POST", "/v1/chat/completions",
                       json={**body, "n": 3, "stream": True}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json
    chunks = [json.loads(e) for e in events[:-1]]
    streamed = ["", "", ""]
    for c in chunks:
        for choice in c["choices"]:
            streamed[choice["index"]] += choice["delta"].get("content") or ""
    assert streamed == texts
    assert chunks[-1]["usage"] == three["usage"]


def test_stop_strings_cut_the_reply_streamed_or_not(model_dir):
    client = TestClient(create_app(serve_model(model_dir, window_s=0)))
    body = ask(QUESTIONS[2], max_tokens=12, temperature=0)
    full = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    stop = full[3:5]  # a stop string that first occurs at character 3 or earlier
    expected = full[: full.find(stop)]
    cut = client.post("/v1/chat/completions", json={**body, "stop": [stop, "never-seen"]}).json()
    assert cut["choices"][0]["message"]["content"] == expected
    assert cut["choices"][0]["finish_reason"] == "stop"
    with client.stream("POST", "/v1/chat/completions",
                       json={**body, "stop": stop, "stream": True}) as r:
        import json
        pieces = [json.loads(line[6:]) for line in r.iter_lines()
                  if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in pieces) == expected
    assert pieces[-1]["choices"][0]["finish_reason"] == "stop"


def test_errors_come_in_openai_envelopes(model_dir):
    from openai import BadRequestError, NotFoundError, OpenAI
    model = serve_model(model_dir, window_s=0)
    client = TestClient(create_app(model))

    def error(status, json=None, **kw):
        r = client.post("/v1/chat/completions", json=json, **kw)
        assert r.status_code == status, r.text
        body = r.json()["error"]
        assert set(body) == {"message", "type", "param", "code"} and body["message"]
        return body

    assert error(404, ask("hi", model="gpt-4o"))["code"] == "model_not_found"
    assert error(400, {"model": "tiny", "messages": []})["param"] == "messages"
    assert error(400, ask("hi", temperature=3))["param"] == "temperature"
    assert error(400, ask("hi", n=0))["param"] == "n"
    assert "at most 4" in error(400, ask("hi", stop=list("abcde")))["message"]
    assert error(400, ask("hi", messages=None) | {"messages": [{"role": "robot",
                                                               "content": "x"}]}
                 )["param"] == "messages.0.role"
    too_long = error(400, ask("what is the capital of france ? " * 40))
    assert too_long["code"] == "context_length_exceeded" and "256" in too_long["message"]
    assert error(400, content=b"{not json", headers={"content-type": "application/json"}
                 )["code"] == "invalid_json"
    route = client.get("/v1/completions")
    assert route.status_code == 404 and route.json()["error"]["code"] == "unknown_url"
    assert model.scheduler.batch_sizes == []  # nothing bad reached the model
    # The openai client maps them onto its own exceptions.
    with http_server(create_app(model)) as url:
        api = OpenAI(base_url=url, api_key="unused", max_retries=0)
        with pytest.raises(NotFoundError, match="not served here"):
            api.chat.completions.create(model="gpt-4o", messages=[{"role": "user",
                                                                   "content": "hi"}])
        with pytest.raises(BadRequestError, match="reads at most"):
            api.chat.completions.create(model="tiny", messages=[
                {"role": "user", "content": "what is the capital of france ? " * 40}])


def test_a_failing_batch_is_a_500_envelope_and_the_server_goes_on(model_dir, monkeypatch):
    model = serve_model(model_dir, window_s=0)
    client = TestClient(create_app(model), raise_server_exceptions=False)
    real = model._run_batch

    def broken(choices):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(model.scheduler, "run_batch", broken)
    r = client.post("/v1/chat/completions", json=ask("hi", max_tokens=3))
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error"
    assert "out of memory" in r.json()["error"]["message"]
    monkeypatch.setattr(model.scheduler, "run_batch", real)
    assert client.post("/v1/chat/completions", json=ask("hi", max_tokens=3)).status_code == 200


def test_a_cancelled_choice_leaves_the_batch_and_the_others_finish(model_dir):
    from rlxf.serve.decode import Choice, decode
    model = serve_model(model_dir)
    prompt = model.prompt_ids([{"role": "user", "content": QUESTIONS[1]}])
    gone, staying = Choice(prompt, 20, 0.0, 1.0, 0), Choice(prompt, 20, 0.0, 1.0, 0)
    gone.cancelled.set()  # as a disconnected streaming client or a stop string does
    decode(model.model, [gone, staying], stop_ids=[], pad_id=model.tokenizer.pad_token_id)
    drained = [list(iter(q.get_nowait, None)) for q in (gone.tokens, staying.tokens)]
    assert len(drained[0]) == 1 and len(drained[1]) == 20
    assert drained[1][0] == drained[0][0]


def test_device_and_precision_as_the_engine_picks_them(model_dir):
    auto = ChatModel(model_dir, "tiny")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto.device.type == expected and auto.model.device.type == expected
    assert auto.precision == ("bf16" if expected == "cuda" and torch.cuda.is_bf16_supported()
                              else "fp32")
    bf16 = ChatModel(model_dir, "tiny", device="cpu", precision="bf16", window_s=0)
    assert bf16.model.dtype == torch.bfloat16
    reply = bf16.complete([{"role": "user", "content": "hi"}], temperature=0, top_p=1.0,
                          max_tokens=4, seed=0)
    assert 1 <= reply.completion_tokens <= 4
    with pytest.raises(ValueError, match="precision"):
        ChatModel(model_dir, "tiny", precision="fp8")
