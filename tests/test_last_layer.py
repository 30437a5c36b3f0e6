"""The reward model's last layer run only where its head reads it (models/last_layer.py) is the
same function as the full forward: values and gradients in float64 against an independent
computation (one unpadded prompt + response sequence at a time through the unmodified model),
with ragged prompt and response lengths. Also: the sigmoid form of tanh-GELU equals GPT-2's gelu_new."""

from __future__ import annotations

import random

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig
from transformers import LlamaForSequenceClassification
from transformers.activations import GELUTanh, NewGELUActivation

from rlxf.models.fused_ops import SigmoidFormGELU, fuse_activations
from rlxf.models.last_layer import pair_last_hidden, supports
from rlxf.train.reward import pair_rewards

PAD, VOCAB, TOL = 0, 50, 1e-9


def _gpt2_rm(n_layer: int = 3):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=n_layer, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                     num_labels=1)
    return GPT2ForSequenceClassification(cfg).double()


def _triples(n: int = 5, seed: int = 0):
    rng = random.Random(seed)
    seq = lambda lo, hi: [rng.randrange(1, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa
    return [seq(2, 9) for _ in range(n)], [seq(1, 8) for _ in range(n)], \
        [seq(1, 8) for _ in range(n)]


def _full_reward(model, prompt, response) -> torch.Tensor:
    return model(input_ids=torch.tensor([prompt + response])).logits[0, 0]


def test_pair_rewards_equal_full_forwards_values_and_gradients():
    prompts, a, b = _triples()
    model = _gpt2_rm()
    chosen, rejected = pair_rewards(model, list(zip(prompts, a, b)), PAD)
    got = torch.cat([chosen, rejected])
    (got * torch.arange(1.0, len(got) + 1, dtype=got.dtype)).sum().backward()
    got_grad = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    want = torch.stack([_full_reward(model, p, r) for p, r in zip(prompts * 2, a + b)])
    (want * torch.arange(1.0, len(want) + 1, dtype=want.dtype)).sum().backward()
    assert torch.allclose(got, want, atol=TOL, rtol=0), (got - want).abs().max()
    for k, p in model.named_parameters():
        assert torch.allclose(got_grad[k], p.grad, atol=TOL, rtol=0), k
    assert len(model.transformer.h) == 3  # the backbone is whole again afterwards


def test_last_hidden_is_the_final_state_and_a_single_layer_still_works():
    prompts, a, b = _triples(seed=3)
    for n_layer in (1, 2):
        model = _gpt2_rm(n_layer)
        got = pair_last_hidden(model.transformer, prompts, a, b, PAD)
        for i, (p, r) in enumerate(zip(prompts * 2, a + b)):
            want = model.transformer(input_ids=torch.tensor([p + r])).last_hidden_state[0, -1]
            assert torch.allclose(got[i], want, atol=TOL, rtol=0)


def test_other_architectures_take_the_full_path():
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, pad_token_id=PAD, num_labels=1)
    model = LlamaForSequenceClassification(cfg).double()
    assert not supports(model.model)
    prompts, a, b = _triples(seed=4)
    got = pair_last_hidden(model.model, prompts, a, b, PAD)
    want = model.model(input_ids=torch.tensor([prompts[0] + a[0]])).last_hidden_state[0, -1]
    assert torch.allclose(got[0], want, atol=1e-6, rtol=0)


def test_fused_gelu_equals_gelu_new_and_swaps_every_activation():
    """The sigmoid form of tanh-GELU against `gelu_new` (transformers' own six ops): float64
    values and gradients from -40 to 40 (where 1 + tanh saturates), with and without autograd;
    in float32 within a few float32 roundings; bf16 through torch's kernel."""
    x = torch.cat([torch.linspace(-8, 8, 2001, dtype=torch.float64),
                   torch.tensor([-40.0, -20.0, -12.0, 12.0, 20.0, 40.0], dtype=torch.float64)])
    x.requires_grad_()
    want = NewGELUActivation()(x)
    weights = torch.linspace(-1, 2, x.numel(), dtype=torch.float64)
    (gw,) = torch.autograd.grad((want * weights).sum(), x)
    got = SigmoidFormGELU()(x)
    (gg,) = torch.autograd.grad((got * weights).sum(), x)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    assert torch.allclose(gg, gw, atol=1e-12, rtol=0)
    with torch.no_grad():
        assert torch.allclose(SigmoidFormGELU()(x), want, atol=1e-12, rtol=0)
        x32 = x.float()
        assert torch.allclose(SigmoidFormGELU()(x32).double(), want, atol=2e-6, rtol=1e-6)
        bf16 = x.to(torch.bfloat16)
        assert torch.equal(SigmoidFormGELU()(bf16), GELUTanh()(bf16))
    model = _gpt2_rm()
    prompts, a, _ = _triples(seed=5)
    ids = torch.tensor([prompts[0] + a[0]])
    before = model(input_ids=ids).logits
    assert fuse_activations(model) == 3
    assert fuse_activations(model) == 0
    assert all(isinstance(blk.mlp.act, SigmoidFormGELU) for blk in model.transformer.h)
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-12, rtol=0)
