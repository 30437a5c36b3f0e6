"""models/group_sampling.py: the cache path conditions on the right context (greedy decoding
equals transformers' generate token for token, GPT-2, Llama, Qwen2, Mistral, Gemma, ragged left-padded prompts), the
draw samples the softmax (frequencies, zero-probability tokens never drawn), groups, <eos> and
seeds behave as documented."""

from __future__ import annotations

import random

import pytest
import torch
from hf_models import small_config
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM)

import rlxf.models.group_sampling as group_sampling
from rlxf.models.group_sampling import draw, sample_groups

PAD, EOS, VOCAB = 0, 1, 40


def _lm(arch: str):
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                         eos_token_id=EOS, bos_token_id=2)
        return GPT2LMHeadModel(cfg).double()
    if arch != "llama":  # the other architectures whose cache path rlxf uses (shared_prefix)
        cfg = small_config(arch, VOCAB, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=2)
        return AutoModelForCausalLM.from_config(cfg).double()
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, max_position_embeddings=64, pad_token_id=PAD,
                      eos_token_id=EOS, bos_token_id=2)
    return LlamaForCausalLM(cfg).double()


def _prompts(n: int = 3):
    rng = random.Random(0)
    return [[rng.randrange(3, VOCAB) for _ in range(rng.randint(2, 7))] for _ in range(n)]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "mistral", "gemma"])
def test_greedy_equals_generate_greedy(arch):
    model, prompts = _lm(arch), _prompts()
    got = sample_groups(model, prompts, 2, temperature=0, max_new_tokens=10, seed=0,
                        pad_id=PAD, eos_id=EOS)
    for i, p in enumerate(prompts):
        out = model.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p),
                             dtype=torch.long), do_sample=False, max_new_tokens=10,
                             pad_token_id=PAD, eos_token_id=EOS)[0, len(p):].tolist()
        want = out[: out.index(EOS) + 1] if EOS in out else out
        assert got[2 * i] == want and got[2 * i + 1] == want


def test_draw_samples_the_softmax_and_never_a_zero_probability_token():
    probs = torch.tensor([0.1, 0.0, 0.2, 0.7])
    logits = probs.log().expand(20000, 4)
    tokens = draw(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert freq[1] == 0
    assert torch.allclose(freq, probs, atol=0.015)
    # temperature 2 samples softmax(logits / 2) ∝ sqrt(p)
    freq2 = torch.bincount(draw(logits, 2.0, torch.Generator().manual_seed(1)),
                           minlength=4).float() / len(tokens)
    assert torch.allclose(freq2, probs.sqrt() / probs.sqrt().sum(), atol=0.015)


def test_uniforms_drawn_up_front_are_the_per_token_ones(monkeypatch):
    """UniformStream: one torch.rand per generator for every token gives the numbers one
    torch.rand per generator per token gives (one generator, or one per prompt), so the
    sampler draws the same tokens for a seed as when it drew each token's uniforms then."""
    from rlxf.models.group_sampling import UniformStream, _uniforms
    for make in (lambda: torch.Generator().manual_seed(7),
                 lambda: [torch.Generator().manual_seed(s) for s in (1, 2, 3)]):
        stream, per_token = UniformStream(6, make(), 5), make()
        for _ in range(5):
            assert torch.equal(_uniforms(6, stream), _uniforms(6, per_token))
        with pytest.raises(ValueError, match="call 6"):
            _uniforms(6, stream)
    model, prompts = _lm("gpt2"), _prompts()
    for seed in (3, [3, 4, 5]):
        kwargs = dict(temperature=0.8, max_new_tokens=10, seed=seed, pad_id=PAD, eos_id=EOS,
                      top_p=0.95)
        up_front = sample_groups(model, prompts, 4, **kwargs)
        with monkeypatch.context() as m:
            class PerToken:  # the sampler keeps its generators: uniforms drawn token by token
                def __new__(cls, rows, generator, calls):
                    return generator
            m.setattr(group_sampling, "UniformStream", PerToken)
            per_token = sample_groups(model, prompts, 4, **kwargs)
        assert up_front == per_token


def test_groups_seeds_and_eos():
    model, prompts = _lm("gpt2"), _prompts()
    a = sample_groups(model, prompts, 4, temperature=1.0, max_new_tokens=12, seed=3,
                      pad_id=PAD, eos_id=EOS)
    b = sample_groups(model, prompts, 4, temperature=1.0, max_new_tokens=12, seed=3,
                      pad_id=PAD, eos_id=EOS)
    c = sample_groups(model, prompts, 4, temperature=1.0, max_new_tokens=12, seed=4,
                      pad_id=PAD, eos_id=EOS)
    assert a == b and a != c and len(a) == 12
    assert all(1 <= len(r) <= 12 and (EOS not in r[:-1]) for r in a)
    assert all(len(r) == 12 or r[-1] == EOS for r in a)
    assert len({tuple(r) for r in a[:4]}) > 1  # a group's samples differ


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_sampling_inside_a_bf16_autocast_draws_what_it_draws_outside(arch):
    """The engine trains under bf16 autocast; a rollout sampled inside it once failed (a
    Llama's keys leave the rotary embedding in fp32, its values in bf16, and one preallocated
    cache cannot hold both). Sampling switches autocast off: the same tokens as outside."""
    model, prompts = _lm(arch), _prompts()
    model.float()
    kwargs = dict(temperature=1.0, max_new_tokens=8, seed=5, pad_id=PAD, eos_id=EOS)
    outside = sample_groups(model, prompts, 3, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = sample_groups(model, prompts, 3, **kwargs)
    assert inside == outside


@pytest.mark.parametrize("arch", ["gpt2", "llama", "peft"])
def test_per_prompt_seeds_draw_the_same_groups_however_the_prompts_are_split(arch):
    """Two processes each sampling half of a step's prompts (interleaved, as Engine.shard splits
    them) draw what one process draws for all: each group comes from its prompt's own seed,
    whatever else shares the batch -- on the cache path and on `generate`'s (a peft model)."""
    from rlxf.models.group_sampling import prompt_seeds, sample_k_per_prompt
    model = _lm("llama" if arch == "peft" else arch)
    if arch == "peft":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    prompts = _prompts(4)
    kwargs = dict(temperature=1.0, max_new_tokens=10, pad_id=PAD, eos_id=EOS)
    whole = sample_k_per_prompt(model, prompts, 3, seed=prompt_seeds(7, range(4)), **kwargs)
    halves = [sample_k_per_prompt(model, prompts[r::2], 3, seed=prompt_seeds(7, range(4)[r::2]),
                                  **kwargs) for r in (0, 1)]
    for r, half in enumerate(halves):
        for j, i in enumerate(range(4)[r::2]):
            assert half[3 * j: 3 * j + 3] == whole[3 * i: 3 * i + 3]
    assert len({tuple(x) for x in whole}) > 4  # they are samples, not one repeated answer
    # another step's seeds draw other samples
    assert sample_k_per_prompt(model, prompts, 3, seed=prompt_seeds(8, range(4)),
                               **kwargs) != whole
    with pytest.raises(ValueError, match="3 seeds for 4 prompts"):
        sample_k_per_prompt(model, prompts, 3, seed=[1, 2, 3], **kwargs)


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_generate_with_per_prompt_seeds_draws_what_the_cache_path_draws(top_p):
    """The `generate` path with one seed per prompt (for peft-wrapped, checkpointed or untested
    models) draws each token with the same `draw` and generators as the cache path: on a model
    both can run, the same samples."""
    from rlxf.models.group_sampling import _generate_per_prompt, prompt_seeds
    model, prompts = _lm("llama"), _prompts(3)
    kwargs = dict(temperature=1.0, max_new_tokens=30, pad_id=PAD, eos_id=EOS, top_p=top_p)
    seeds = prompt_seeds(11, range(3))
    cached = sample_groups(model, prompts, 4, seed=seeds, **kwargs)
    assert _generate_per_prompt(model, prompts, 4, seeds, **kwargs) == cached
    assert any(len(r) < 30 for r in cached) and len({tuple(r) for r in cached}) > 3  # <eos> too
