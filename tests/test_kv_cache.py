"""rlxf's KV-cache calls use the name the installed transformers declares, without a deprecation
warning, and the cache is really used: a prompt prefilled into the cache, then the response fed
on top of it, gives the logits of one full forward of prompt + response (a name the forward did
not know would be swallowed by its **kwargs and the response would run without its prompt)."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from transformers import (DynamicCache, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, StaticCache)

from rlxf.models.kv_cache import cache_kwargs, returned_cache

VOCAB = 40


def _lm(arch: str):
    torch.manual_seed(0)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2,
                                          n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                          attn_pdrop=0.0)).double().eval()
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=2, num_attention_heads=2,
                                        max_position_embeddings=32)).double().eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_cache_argument_is_one_the_forward_declares(arch):
    model = _lm(arch)
    for m in (model, model.base_model):
        (name,) = cache_kwargs(m, None)
        assert name in inspect.signature(type(m).forward).parameters


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("cache_class", ["dynamic", "static"])
def test_prefilled_cache_continues_the_prompt_without_warnings(arch, cache_class):
    model = _lm(arch)
    prompt, response = torch.tensor([[3, 9, 4, 17, 8]]), torch.tensor([[5, 22, 11]])
    with torch.no_grad():
        full = model(input_ids=torch.cat([prompt, response], 1)).logits[:, prompt.shape[1]:]
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            if cache_class == "static":
                cache = StaticCache(config=model.config, max_cache_len=16)
                model(input_ids=prompt, use_cache=True, **cache_kwargs(model, cache))
            else:
                cache = returned_cache(model(input_ids=prompt, use_cache=True))
                assert isinstance(cache, DynamicCache)
            assert cache.get_seq_length() == prompt.shape[1]
            continued = model(input_ids=response, use_cache=True,
                              position_ids=torch.arange(5, 8)[None],
                              **cache_kwargs(model, cache)).logits
    assert cache.get_seq_length() == prompt.shape[1] + response.shape[1]
    torch.testing.assert_close(continued, full, rtol=0, atol=1e-10)
