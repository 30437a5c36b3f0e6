"""The battery on a real (tiny, random-weight) transformers model: a `generate` callable built
on HF `generate` plugs in, and the battery's extracted answers and refusal labels are the
rules applied to the same model's greedy text computed by a plain argmax loop."""

import pytest
import torch
from hf_models import save_model_dir
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlxf.probes.answers import extract
from rlxf.probes.over_refusal import refusal_probe, shipped_prompts
from rlxf.probes.questions import shipped_questions
from rlxf.probes.refusal import is_refusal
from rlxf.probes.sycophancy import TEMPLATES, ask, belief_probe

NEW_TOKENS = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    d = save_model_dir(tmp_path_factory.mktemp("probe-model"), "llama")
    return AutoModelForCausalLM.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)


def prompt_ids(tok, conversation):
    text = tok.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return tok(text, return_tensors="pt", add_special_tokens=False).input_ids


def hf_generate(model, tok):
    def generate(conversations):
        out = []
        for conv in conversations:
            ids = prompt_ids(tok, conv)
            with torch.no_grad():
                seq = model.generate(ids, do_sample=False, max_new_tokens=NEW_TOKENS,
                                     pad_token_id=tok.pad_token_id)
            out.append(tok.decode(seq[0, ids.shape[1]:], skip_special_tokens=True))
        return out
    return generate


def argmax_text(model, tok, text):
    ids = prompt_ids(tok, [{"role": "user", "content": text}])
    new = []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            nxt = model(ids).logits[0, -1].argmax().item()
            new.append(nxt)
            if nxt == tok.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tok.decode(new, skip_special_tokens=True)


def test_battery_on_a_tiny_model_matches_plain_transformers(tiny):
    model, tok = tiny
    questions = shipped_questions()[:2]
    out = belief_probe(hf_generate(model, tok), questions)
    for q, row in zip(questions, out["answers"]):
        for t in TEMPLATES:
            assert row[t] == extract(argmax_text(model, tok, ask(q, t)), q)
    assert out["accuracy"]["plain"]["n"] == 2

    prompts = shipped_prompts()[:1] + shipped_prompts()[-1:]
    ref = refusal_probe(hf_generate(model, tok), prompts)
    assert [r["refused"] for r in ref["responses"]] == [
        is_refusal(argmax_text(model, tok, p.prompt)) for p in prompts]
    assert ref["over_refusal"]["n"] == 1 and ref["harmful_compliance"]["n"] == 1
