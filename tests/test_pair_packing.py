"""Pairs packed padding-free (train/pair_packing.py) are the same function as the padded
shared-prefix path (models/shared_prefix.py) and as one unpadded prompt + response forward per
sequence through the unmodified model: reward-model rewards and DPO log-probs, values and
gradients in float64 (1e-10), GPT-2 and Llama, sdpa and eager attention, ragged lengths, with
pad tokens inside and at the end of responses (the lab's pad is its eos)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2ForSequenceClassification,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification)

import rlxf.train.dpo as dpo_module
import rlxf.train.reward as reward_module
from rlxf.train.dpo import pair_logprobs, reference_logprobs
from rlxf.train.pair_packing import applies_to, pack_for, pack_pairs
from rlxf.train.reward import pair_rewards

from hf_models import small_config

PAD, VOCAB, TOL = 0, 50, 1e-10


def _model(arch: str, head: str, attention: str = "sdpa"):
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=96, n_embd=16, n_layer=3, n_head=2,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                         num_labels=1)
        cls = GPT2ForSequenceClassification if head == "reward" else GPT2LMHeadModel
    else:
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                          max_position_embeddings=96, pad_token_id=PAD, num_labels=1)
        cls = LlamaForSequenceClassification if head == "reward" else LlamaForCausalLM
    cfg._attn_implementation = attention
    return cls(cfg).double()


def _pairs(n: int = 7, seed: int = 0):
    """Ragged prompts and responses; some responses end in (or are only) the pad/eos token."""
    rng = random.Random(seed)
    seq = lambda lo, hi: [rng.randrange(1, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa
    pairs = [(seq(2, 9), seq(1, 12) + [PAD] * (i % 2), seq(0, 5) + [PAD]) for i in range(n)]
    return pairs


def _full_reward(model, prompt, response):
    return model(input_ids=torch.tensor([prompt + response])).logits[0, 0]


def _full_logprob(model, prompt, response):
    ids = torch.tensor([prompt + response])
    logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    steps = torch.arange(len(prompt) - 1, ids.shape[1] - 1)
    return logp[steps, ids[0, steps + 1]].sum()


def _values_and_grads(model, fn):
    got = fn()
    (got * torch.arange(1.0, len(got) + 1, dtype=got.dtype)).sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return got.detach(), grads


CASES = [(arch, head, attention) for arch in ("gpt2", "llama") for head in ("reward", "lm")
         for attention in ("sdpa", "eager")]


@pytest.mark.parametrize("arch,head,attention", CASES)
def test_packed_equals_padded_values_and_gradients(arch, head, attention, monkeypatch):
    """Against the padded shared-prefix path, and the values against full forwards."""
    model, pairs = _model(arch, head, attention), _pairs(seed=len(arch) + len(head))
    assert pack_for(model, *map(list, zip(*pairs)), PAD) is not None  # packed, not padded
    fn = pair_rewards if head == "reward" else pair_logprobs
    got, got_grad = _values_and_grads(model, lambda: torch.cat(fn(model, pairs, PAD)))
    module = reward_module if head == "reward" else dpo_module
    monkeypatch.setattr(module, "pack_for", lambda *args: None)
    want, want_grad = _values_and_grads(model, lambda: torch.cat(fn(model, pairs, PAD)))
    full = _full_reward if head == "reward" else _full_logprob
    independent = torch.stack([full(model, p, rs[k]) for k in (0, 1) for p, *rs in pairs])
    # Llama's eager attention takes its softmax in float32 (transformers), so it is not float64
    tol = 1e-6 if (arch, attention) == ("llama", "eager") else TOL
    assert torch.allclose(got, want, atol=tol, rtol=0), (got - want).abs().max()
    assert torch.allclose(got, independent.detach(), atol=tol, rtol=0)
    assert got_grad.keys() == want_grad.keys()
    scale = max(g.abs().max() for g in want_grad.values())
    for k in want_grad:
        assert torch.allclose(got_grad[k], want_grad[k], atol=tol * scale, rtol=0), \
            (k, (got_grad[k] - want_grad[k]).abs().max())


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_reference_pass_in_batches_equals_full_forwards(arch):
    model, pairs = _model(arch, "lm"), _pairs(seed=5)
    chosen, rejected = reference_logprobs(model, pairs, PAD, batch_size=3)  # several batches
    with torch.no_grad():
        want = torch.stack([_full_logprob(model, p, rs[k]) for k in (0, 1) for p, *rs in pairs])
    assert torch.allclose(torch.cat([chosen, rejected]), want, atol=TOL, rtol=0)


def test_packs_only_where_it_saves_positions():
    model = _model("gpt2", "lm", "sdpa")
    ragged = list(map(list, zip(*_pairs(n=12, seed=3))))
    assert pack_for(model, *ragged, PAD) is not None
    rng = random.Random(0)
    same = [[rng.randrange(1, VOCAB) for _ in range(n)] for n in (6, 9, 9) for _ in range(12)]
    assert pack_for(model, same[:12], same[12:24], same[24:], PAD) is None  # nothing to save
    model.config._attn_implementation = "flash_attention_2"  # reads no custom mask
    assert not applies_to(model) and pack_for(model, *ragged, PAD) is None


def test_rows_hold_several_pairs_and_no_token_sees_another_pair_or_the_other_response():
    pairs = _pairs(n=12, seed=2)
    packed = pack_pairs(*map(list, zip(*pairs)), PAD)
    lengths = sum(len(p) + len(a) + len(b) for p, a, b in pairs)
    assert packed.ids.shape[0] < len(pairs)  # packed, not one pair a row
    assert int((packed.ids != PAD).sum()) <= lengths <= packed.ids.numel()
    # b's first token attends to its prompt and itself only
    n = len(pairs)
    for i, (p, a, b) in enumerate(pairs):
        row, first_b = packed.row[n + i], packed.predictors[n + i, 1] if len(b) > 1 else None
        if first_b is not None:
            assert int(packed.allowed[row, first_b].sum()) == len(p) + 1


@pytest.mark.parametrize("arch", ["qwen2", "mistral", "gemma"])
def test_other_tested_architectures_pack_to_the_same_logprobs(arch, monkeypatch):
    """The shared-prefix path's other architectures (Qwen2: q/k/v bias; Gemma: scaled
    embeddings, tied head) take the packed path too: same values and gradients."""
    torch.manual_seed(0)
    config = small_config(arch, VOCAB, pad_token_id=PAD)
    config._attn_implementation = "sdpa"
    model, pairs = AutoModelForCausalLM.from_config(config).double(), _pairs(seed=7)
    assert pack_for(model, *map(list, zip(*pairs)), PAD) is not None
    got, got_grad = _values_and_grads(model, lambda: torch.cat(pair_logprobs(model, pairs, PAD)))
    monkeypatch.setattr(dpo_module, "pack_for", lambda *args: None)
    want, want_grad = _values_and_grads(model, lambda: torch.cat(pair_logprobs(model, pairs, PAD)))
    # Gemma's RMSNorm computes in float32 (transformers), so Gemma is not float64 throughout
    tol = 1e-6 if arch == "gemma" else TOL
    assert torch.allclose(got, want, atol=tol, rtol=0), (got - want).abs().max()
    scale = max(g.abs().max() for g in want_grad.values())
    for k in want_grad:
        assert torch.allclose(got_grad[k], want_grad[k], atol=tol * scale, rtol=0), \
            (k, (got_grad[k] - want_grad[k]).abs().max() / scale)
