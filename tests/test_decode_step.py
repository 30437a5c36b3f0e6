"""models/decode_step.py: the lean per-token forward the sampler uses after its prefill gives
the model's own forward's next-token logits (GPT-2, Llama, Qwen2 and Mistral with grouped-query
attention, ragged left-padded prompts, float64), so group sampling draws the same tokens as
through the model's forward under the same seeds; anything it does not reproduce falls back."""

from __future__ import annotations

import pytest
import torch
from test_group_sampling import EOS, PAD, _lm, _prompts
from transformers import StaticCache

import rlxf.models.group_sampling as group_sampling
from rlxf.models.decode_step import decode_step
from rlxf.models.kv_cache import cache_kwargs


def _model(arch: str):
    """A random model whose norms differ from their init (ones, zeros): a step that called
    the wrong norm would still match an untouched model."""
    model = _lm(arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _prefilled(model, prompts, k: int, new: int):
    """A StaticCache the model's forward prefilled with left-padded `prompts`, each row
    repeated k times (what the sampler builds), and its (N, W) mask and next positions."""
    n, width = len(prompts), max(map(len, prompts))
    ids = torch.full((n, width), PAD)
    mask = torch.zeros(n, width + new, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p): width] = 1
    cache = StaticCache(config=model.config, max_cache_len=width + new)
    positions = (mask[:, :width].cumsum(1) - 1).clamp(min=0)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
          **cache_kwargs(model, cache))
    group_sampling._repeat_rows(cache, k)
    mask = mask.repeat_interleave(k, 0)
    return cache, mask, width, mask.sum(1)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "mistral"])
def test_step_logits_equal_the_models_forward(arch):
    model, prompts, k, new = _model(arch), _prompts(3), 2, 6
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        ours, mask_ours, width, start = _prefilled(model, prompts, k, new)
        theirs, mask, _, _ = _prefilled(model, prompts, k, new)
        step = decode_step(model, ours, mask_ours)
        assert step is not None
        for t in range(new):
            token = torch.randint(3, 40, (len(prompts) * k,), generator=gen)
            mask[:, width + t] = 1
            want = model(input_ids=token[:, None], attention_mask=mask,
                         position_ids=(start + t)[:, None], use_cache=True,
                         **cache_kwargs(model, theirs)).logits[:, -1]
            got = step(token, width + t, start + t)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
            # the cache holds what the model's forward wrote (the next step reads it)
            for a, b in zip(ours.layers, theirs.layers):
                torch.testing.assert_close(a.keys, b.keys, rtol=0, atol=1e-12)
                torch.testing.assert_close(a.values, b.values, rtol=0, atol=1e-12)


def test_gpt2_step_logits_are_bitwise_the_forwards_in_float32():
    """The lab's models are GPT-2: in float32 the lean step computes the forward's logits bit for
    bit, so sampling through it leaves every lab number unchanged (not only to rounding)."""
    model, prompts, k, new = _model("gpt2").float(), _prompts(4), 4, 12
    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        ours, mask_ours, width, start = _prefilled(model, prompts, k, new)
        theirs, mask, _, _ = _prefilled(model, prompts, k, new)
        step = decode_step(model, ours, mask_ours)
        for t in range(new):
            token = torch.randint(3, 40, (len(prompts) * k,), generator=gen)
            mask[:, width + t] = 1
            want = model(input_ids=token[:, None], attention_mask=mask,
                         position_ids=(start + t)[:, None], use_cache=True,
                         **cache_kwargs(model, theirs)).logits[:, -1]
            assert torch.equal(step(token, width + t, start + t), want)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_sampled_tokens_equal_the_forward_paths(arch, top_p, monkeypatch):
    """float32, temperature 1 (the benchmark's setting) and 0.7, one seed per prompt: the
    lean step and the model's forward draw the same tokens."""
    model, prompts = _model(arch).float(), _prompts(4)
    for temperature in (1.0, 0.7):
        kwargs = dict(temperature=temperature, max_new_tokens=24, pad_id=PAD, eos_id=EOS,
                      top_p=top_p, seed=group_sampling.prompt_seeds(5, range(4)))
        lean = group_sampling.sample_groups(model, prompts, 4, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(group_sampling, "decode_step", lambda *a: None)
            forward = group_sampling.sample_groups(model, prompts, 4, **kwargs)
        assert lean == forward
        assert len({tuple(r) for r in lean}) > 8 and any(len(r) == 24 for r in lean)


def test_what_it_does_not_reproduce_decodes_through_the_forward():
    """Gemma (scaled embeddings), another attention implementation, a sliding window, a GPT-2
    projection that is not transformers' Conv1D."""
    prompts = _prompts(2)
    gemma = _lm("gemma").eval()
    eager = _lm("llama").eval()
    eager.config._attn_implementation = "eager"
    window = _lm("llama").eval()
    window.config.sliding_window = 4
    linear = _lm("gpt2").eval()  # a GPT-2 whose projection is not Conv1D (weight (out, in))
    linear.transformer.h[0].attn.c_proj = torch.nn.Linear(16, 16).double()
    with torch.inference_mode():
        for model in (gemma, eager, window, linear):
            cache, mask, _, _ = _prefilled(model, prompts, 2, 3)
            assert decode_step(model, cache, mask) is None
    llama = _lm("llama").eval()
    with torch.inference_mode():
        cache, mask, _, _ = _prefilled(llama, prompts, 2, 3)
        assert decode_step(llama, cache, mask) is not None
