"""The shared-prefix pair forward is the same function as two full forwards: values and gradients
agree in float64 (tolerance 1e-9) with an independent computation that runs prompt + response
as one sequence, for GPT-2 and Llama (learned vs rotary positions), Qwen2, Mistral and Gemma, with prompts and responses of
different lengths in one batch.

The RMSNorm models' gradients (all but GPT-2) get a float32-level tolerance: RMSNorm computes in float32 even in a float64
model, and the prompt's gradient is summed from both responses before that float32 backward here
but after it in the reference (with identical responses the two agree to 1e-16)."""

from __future__ import annotations

import random

import pytest
import torch
from hf_models import small_config
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2ForSequenceClassification,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig)

from rlxf.models.shared_prefix import pair_hidden, pair_response_logprobs
from rlxf.train.dpo import pair_logprobs
from rlxf.train.reward import pair_rewards

PAD, VOCAB, TOL = 0, 50, 1e-9
ARCHS = ["gpt2", "llama", "qwen2", "mistral", "gemma"]


def _lm(arch: str):
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD)
        return GPT2LMHeadModel(cfg).double()
    if arch == "llama":
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                          pad_token_id=PAD)
        return LlamaForCausalLM(cfg).double()
    return AutoModelForCausalLM.from_config(small_config(arch, VOCAB, pad_token_id=PAD)).double()


def _triples(n: int = 5, seed: int = 0):
    rng = random.Random(seed)
    seq = lambda lo, hi: [rng.randrange(1, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa
    return [seq(2, 9) for _ in range(n)], [seq(1, 8) for _ in range(n)], \
        [seq(1, 8) for _ in range(n)]


def _full_logprob(model, prompt: list[int], response: list[int]) -> torch.Tensor:
    """Reference: one unpadded sequence at a time, log-softmax of the full logits."""
    ids = torch.tensor([prompt + response])
    logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    targets = ids[0, 1:]
    per_token = logp[torch.arange(len(targets)), targets]
    return per_token[len(prompt) - 1:].sum()


@pytest.mark.parametrize("arch", ARCHS)
def test_pair_logprobs_equal_two_full_forwards_values_and_gradients(arch):
    prompts, a, b = _triples()
    model = _lm(arch)
    got = pair_response_logprobs(model, prompts, a, b, PAD)
    got.sum().backward()
    got_grad = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    want = torch.stack([_full_logprob(model, p, r) for p, r in zip(prompts * 2, a + b)])
    want.sum().backward()
    assert torch.allclose(got, want, atol=TOL, rtol=0), (got - want).abs().max()
    grad_tol = TOL if arch == "gpt2" else 1e-6 * max(p.grad.abs().max() for p in model.parameters())
    for k, p in model.named_parameters():
        assert torch.allclose(got_grad[k], p.grad, atol=grad_tol, rtol=0), k


def test_dpo_pair_logprobs_uses_it_and_splits_chosen_rejected():
    prompts, a, b = _triples(seed=1)
    model = _lm("gpt2")
    chosen, rejected = pair_logprobs(model, list(zip(prompts, a, b)), PAD)
    for i in range(len(prompts)):
        assert abs(chosen[i] - _full_logprob(model, prompts[i], a[i])) < TOL
        assert abs(rejected[i] - _full_logprob(model, prompts[i], b[i])) < TOL


def test_reward_of_each_sequence_is_the_score_at_its_last_token():
    prompts, a, b = _triples(seed=2)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                     num_labels=1)
    model = GPT2ForSequenceClassification(cfg).double()
    chosen, rejected = pair_rewards(model, list(zip(prompts, a, b)), PAD)
    for i in range(len(prompts)):
        for got, resp in ((chosen[i], a[i]), (rejected[i], b[i])):
            want = model(input_ids=torch.tensor([prompts[i] + resp])).logits[0, 0]
            assert abs(got - want) < TOL


def test_empty_response_is_refused():
    model = _lm("gpt2")
    with pytest.raises(ValueError, match="at least one token"):
        pair_hidden(model.base_model, [[1, 2]], [[]], [[3]], PAD)


@pytest.mark.parametrize("arch", ARCHS)
def test_lm_loss_is_the_token_mean_over_trained_tokens_of_the_full_logits(arch):
    """Reference: full float64 logits of every sequence alone (HF's own `loss` casts logits to
    float32, so it is not a float64 reference); the mean over all trained tokens of the batch."""
    from rlxf.train.lm import lm_batch, lm_loss

    prompts, a, _ = _triples(seed=3)
    model = _lm(arch)
    ids, mask, labels = lm_batch([(p + r, len(p)) for p, r in zip(prompts, a)], PAD)
    want = -torch.stack([_full_logprob(model, p, r) for p, r in zip(prompts, a)]).sum() \
        / sum(len(r) for r in a)
    assert abs(lm_loss(model, ids, mask, labels) - want) < TOL


def test_a_sliding_attention_window_takes_the_full_forward_path():
    """A window changes what a position attends to; the cache path is not tested with one."""
    from rlxf.models.shared_prefix import applies_to

    windowed = AutoModelForCausalLM.from_config(MistralConfig(**{
        **small_config("mistral", VOCAB).to_dict(), "sliding_window": 8}))
    assert not applies_to(windowed)
    assert applies_to(_lm("mistral")) and applies_to(_lm("qwen2"))
    prompts, a, b = _triples(seed=5)
    chosen, _ = pair_logprobs(windowed.double(), list(zip(prompts, a, b)), PAD)
    assert abs(chosen[0] - _full_logprob(windowed, prompts[0], a[0])) < TOL


def test_checkpointed_or_wrapped_models_take_the_full_forward_path():
    from rlxf.models.shared_prefix import applies_to

    model = _lm("gpt2")
    assert applies_to(model)
    # transformers 5's name; the old one (gradient_checkpointing_enable) is deprecated
    model.activation_checkpointing_enable()
    assert not applies_to(model)  # the KV cache is off under checkpointing
    prompts, a, b = _triples(seed=4)
    model.train()
    chosen, _ = pair_logprobs(model, list(zip(prompts, a, b)), PAD)
    assert abs(chosen[0] - _full_logprob(model, prompts[0], a[0])) < 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_group_token_logprobs_equal_full_forwards_per_token_values_and_gradients(arch):
    """GRPO's layout: k = 3 responses per prompt on consecutive rows, ragged lengths; every
    response token's log-prob against the full unpadded forward, and the gradient of a weighted
    sum of them."""
    from rlxf.models.shared_prefix import group_token_logprobs

    prompts, a, b = _triples(n=3, seed=6)
    _, c, _ = _triples(n=3, seed=7)
    responses = [r for triple in zip(a, b, c) for r in triple]
    model = _lm(arch)
    got, mask = group_token_logprobs(model, prompts, responses, PAD)
    weights = torch.arange(1.0, got.numel() + 1, dtype=got.dtype).view_as(got) * mask
    (got * weights).sum().backward()
    got_grad = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    total = 0
    for i, r in enumerate(responses):
        p = prompts[i // 3]
        ids = torch.tensor([p + r])
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        want = logp[torch.arange(len(p) - 1, len(p) + len(r) - 1), ids[0, len(p):]]
        assert mask[i].sum() == len(r)
        assert torch.allclose(got[i, : len(r)], want, atol=TOL, rtol=0), (i, got[i], want)
        assert (got[i, len(r):] == 0).all()
        total = total + (want * weights[i, : len(r)]).sum()
    total.backward()
    grad_tol = TOL if arch == "gpt2" else 1e-6 * max(p.grad.abs().max() for p in model.parameters())
    for k, p in model.named_parameters():
        assert torch.allclose(got_grad[k], p.grad, atol=grad_tol, rtol=0), k


def test_group_token_logprobs_of_one_token_responses():
    """The log-prob path runs every response token but the last: with one-token responses only
    the prompts run; mixed with longer ones, each row still equals its full forward."""
    from rlxf.models.shared_prefix import group_token_logprobs

    model = _lm("gpt2")
    prompts = [[3, 4, 5], [6, 7]]
    for responses in ([[8], [9], [10], [11]], [[8], [9, 12, 13], [10, 14], [11]]):
        got, mask = group_token_logprobs(model, prompts, responses, PAD)
        for i, r in enumerate(responses):
            p = prompts[i // 2]
            ids = torch.tensor([p + r])
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            want = logp[torch.arange(len(p) - 1, len(p) + len(r) - 1), ids[0, len(p):]]
            assert torch.allclose(got[i, : len(r)], want, atol=TOL, rtol=0)
            assert mask[i].sum() == len(r) and (got[i, len(r):] == 0).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_grpo_loss_and_gradients_on_either_logprob_path_equal_full_forwards(arch, monkeypatch):
    """train/group_rl.py's log-probs (models/logprobs.group_response_logprobs): the shared-prefix
    path and the full-forward fallback (gathered into the response layout) give the GRPO loss
    (clipped surrogate + β·k3, sequence mean) and its gradients of an independent reference that
    runs each prompt + response alone."""
    import rlxf.models.logprobs as logprobs_module
    from rlxf.models.logprobs import group_response_logprobs
    from rlxf.train.losses import grpo_loss

    prompts, a, b = _triples(n=2, seed=8)
    _, c, _ = _triples(n=2, seed=9)
    responses = [r for triple in zip(a, b, c) for r in triple]  # k = 3, grouped by prompt
    model = _lm(arch)
    g = torch.Generator().manual_seed(0)
    advantages = torch.randn(len(responses), generator=g, dtype=torch.float64)

    def loss_and_grads(logprobs, mask):
        # π_old and the reference: fixed perturbations of the current log-probs, so the ratio
        # and the KL term are away from their trivial values (some ratios clip)
        noise = torch.randn(logprobs.shape, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
        old = (logprobs.detach() + 0.3 * noise) * mask
        ref = (logprobs.detach() - 0.2 * noise.flip(0)) * mask
        loss = grpo_loss(logprobs, old, advantages, mask.to(logprobs.dtype), clip_range=0.2,
                         kl_coef=0.1, ref_logprobs=ref, reduction="sequence").loss
        model.zero_grad()
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    width = max(map(len, responses))
    want_lp = torch.zeros(len(responses), width, dtype=torch.float64)
    for i, r in enumerate(responses):
        p = prompts[i // 3]
        ids = torch.tensor([p + r])
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        want_lp[i, : len(r)] = logp[torch.arange(len(p) - 1, len(p) + len(r) - 1), ids[0, len(p):]]
    want_mask = (torch.arange(width) < torch.tensor([len(r) for r in responses])[:, None]).long()
    want, want_grad = loss_and_grads(want_lp, want_mask)
    grad_tol = TOL if arch == "gpt2" else 1e-6 * max(v.abs().max() for v in want_grad.values())
    for shared in (True, False):
        monkeypatch.setattr(logprobs_module, "applies_to", lambda m, s=shared: s)
        got, got_grad = loss_and_grads(*group_response_logprobs(model, prompts, responses, PAD))
        assert abs(got - want) < TOL, (shared, got, want)
        for k in want_grad:
            assert torch.allclose(got_grad[k], want_grad[k], atol=grad_tol, rtol=0), (shared, k)


def test_dpo_reference_pass_runs_the_kernel_the_policy_trains_with():
    """GPT-2's `gelu_new` (six ops) and the fused tanh-GELU the policy trains with round
    differently in float32; the reference pass fuses too, so step 0's log-ratio is exactly 0."""
    from rlxf.models.fused_ops import SigmoidFormGELU, fuse_activations
    from rlxf.train.dpo import reference_logprobs

    reference, policy = _lm("gpt2").float(), _lm("gpt2").float()
    pairs = list(zip(*_triples(n=8, seed=9)))
    ref_chosen, ref_rejected = reference_logprobs(reference, pairs, PAD)
    assert all(isinstance(b.mlp.act, SigmoidFormGELU) for b in reference.transformer.h)
    fuse_activations(policy)
    with torch.no_grad():
        chosen, rejected = pair_logprobs(policy, pairs, PAD)
    assert torch.equal(chosen, ref_chosen) and torch.equal(rejected, ref_rejected)
