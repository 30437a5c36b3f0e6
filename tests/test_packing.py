"""SFT packing (train/packing.py, `rlxf sft --packing`) against TRL 1.16's `packing=True` and
against the unpacked computation:
- the rows are TRL's best-fit-decreasing rows (same sequences, same order, same lengths);
- the packed loss and its gradients equal the unpacked loss of the same sequences (float64:
  position ids restart per sequence and no sequence attends to another), GPT-2 (learned
  positions) and Llama (rotary);
- the loss of rlxf's packed rows equals the loss a model gives on TRL's padding-free packed
  batch of the same data (SFTTrainer's own dataset and collator);
- `rlxf sft --packing` trains and records how many rows it packed."""

from __future__ import annotations

import json
import random

import pytest
import torch
from hf_models import save_model_dir
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rlxf.train.lm import lm_batch, lm_loss, packed_positions, padding_free_rows, train_lm
from rlxf.train.packing import best_fit_decreasing, pack

torch.set_num_threads(1)
PAD, VOCAB = 0, 40


def _examples(n: int, seed: int):
    """SFT examples with ragged lengths: half trained from an index, half by a 0/1 mask (the
    multi-turn shape)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ids = [rng.randrange(1, VOCAB) for _ in range(rng.randint(3, 11))]
        if i % 2:
            out.append((ids, rng.randint(1, len(ids) - 1)))
        else:
            mask = [0] + [rng.randint(0, 1) for _ in ids[1:]]
            mask[-1] = 1
            out.append((ids, mask))
    return out


def test_rows_are_trls_best_fit_decreasing_rows():
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    rng = random.Random(0)
    lengths = [rng.randint(1, 12) for _ in range(60)]  # many ties
    # each token is its example's index, so TRL's rows say which example went where
    data = Dataset.from_dict({"input_ids": [[i] * n for i, n in enumerate(lengths)]})
    trl_rows = pack_dataset(data, seq_length=16, strategy="bfd")
    want = [[ids[at] for at in [sum(row["seq_lengths"][:k])
                                for k in range(len(row["seq_lengths"]))]]
            for row, ids in zip(trl_rows, trl_rows["input_ids"])]
    assert best_fit_decreasing(lengths, 16) == want
    assert [len(r) for r in want] != [1] * len(want)  # rows do hold several sequences


def test_a_sequence_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="13 tokens into rows of 12"):
        best_fit_decreasing([4, 13], 12)


def _gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0)).double()


def _llama(tmp_path):
    return AutoModelForCausalLM.from_pretrained(save_model_dir(tmp_path, "llama")).double()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_packed_loss_and_gradients_equal_the_unpacked_ones(arch, tmp_path):
    model = _gpt2() if arch == "gpt2" else _llama(tmp_path)
    examples = _examples(9, seed=1)
    rows = pack(examples, 24)
    assert len(rows) < len(examples) and any(len(r.lengths) > 2 for r in rows)
    ids, mask, labels = lm_batch(rows, PAD)
    got = lm_loss(model, ids, mask, labels, reduction="sum",
                  position_ids=packed_positions(rows, ids.shape[1]))
    got.backward()
    got_grad = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    want = lm_loss(model, *lm_batch(examples, PAD), reduction="sum")
    want.backward()
    assert abs(got - want) < 1e-9, (got, want)
    # RMSNorm computes in float32 even in a float64 model (see test_shared_prefix.py)
    tol = 1e-9 if arch == "gpt2" else 1e-6 * max(p.grad.abs().max() for p in model.parameters())
    for k, p in model.named_parameters():
        assert torch.allclose(got_grad[k], p.grad, atol=tol, rtol=0), k


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_padding_free_training_takes_the_padded_batches_steps(arch, tmp_path):
    """train_lm with each micro-batch packed into rows (`padding_free`, the CPU's default)
    reaches the parameters and per-step losses of padded batches: 3 steps of 8 ragged examples
    in 2 micro-batches, float64."""
    from rlxf.train.hparams import Optimisation
    from rlxf.train.loop import Checkpointer

    cfg = Optimisation(steps=3, batch_size=8, grad_accum=2, lr=1e-2, device="cpu")
    rows_seen, runs = [], {}
    for padding_free in (True, False):
        model = _gpt2() if arch == "gpt2" else _llama(tmp_path)
        hook = model.base_model.register_forward_pre_hook(  # lm_loss runs the backbone
            lambda _m, args, kw: rows_seen.append((padding_free, kw["input_ids"].shape[0])),
            with_kwargs=True)
        losses = []
        train_lm(model, _examples(16, seed=2), cfg, PAD, 0,
                 Checkpointer(tmp_path / f"ckpt-{padding_free}", 1000),
                 lambda _step, m: losses.append(m["loss/lm"]), padding_free=padding_free)
        hook.remove()
        runs[padding_free] = (torch.cat([p.detach().flatten() for p in model.parameters()]),
                              losses)
    # packed: fewer rows than examples in some micro-batch; padded: always 4 rows
    assert any(n < 4 for packed, n in rows_seen if packed)
    assert all(n == 4 for packed, n in rows_seen if not packed)
    (got, got_losses), (want, want_losses) = runs[True], runs[False]
    assert got_losses == pytest.approx(want_losses, abs=1e-12)
    tol = 1e-10 if arch == "gpt2" else 1e-6  # Llama's RMSNorm computes in float32
    assert (got - want).abs().max() < tol
    assert (got - _gpt2_or_llama_start(arch, tmp_path)).abs().max() > 1e-4  # it did train


def test_padding_free_rows_leave_batches_that_cannot_pack():
    """Rows as wide as the longest example: two examples share one only if they fit together."""
    same = [([5] * 6, 2) for _ in range(4)]
    assert padding_free_rows(same) is same
    ragged = [([5] * n, 1) for n in (6, 2, 3, 6)]
    rows = padding_free_rows(ragged)
    assert sorted(r.lengths for r in rows) == [[3, 2], [6], [6]]


def test_padding_free_is_the_default_on_the_cpu_for_tested_architectures_only(tmp_path):
    from hf_models import save_model_dir

    from rlxf.train.lm import padding_free_by_default

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    llama = _llama(tmp_path)
    qwen2 = AutoModelForCausalLM.from_pretrained(save_model_dir(tmp_path / "q", "qwen2"))
    assert padding_free_by_default(_gpt2(), cpu) and padding_free_by_default(llama, cpu)
    assert not padding_free_by_default(llama, cuda)
    assert not padding_free_by_default(qwen2, cpu)  # not tested packed: stays padded


def _gpt2_or_llama_start(arch, tmp_path):
    model = _gpt2() if arch == "gpt2" else _llama(tmp_path)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_packed_loss_equals_the_loss_of_trls_packed_batch(tmp_path):
    """TRL prepares and packs the same prompt/completion rows (SFTTrainer with packing=True,
    bfd), its collator makes the padding-free batch; the model's loss on that batch equals
    rlxf's loss on its own packed rows."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from rlxf.data.training_data import load_demonstrations
    from rlxf.models.build import load_tokenizer
    from rlxf.models.chat import chat_format
    from rlxf.tune.common import encode_demonstrations

    base = save_model_dir(tmp_path / "base", "llama")
    tok = load_tokenizer(base)
    words = "the capital of france is paris and the tide keeps time".split()
    rng = random.Random(3)
    rows = [{"prompt": " ".join(rng.choices(words, k=rng.randint(2, 6))),
             "completion": " " + " ".join(rng.choices(words, k=rng.randint(1, 8)))}
            for _ in range(12)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capacity = 48
    examples = encode_demonstrations(chat_format(tok), load_demonstrations(data).items,
                                     capacity).items
    packed = pack(examples, capacity)
    model = AutoModelForCausalLM.from_pretrained(base).double()
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_list(rows),
                         args=SFTConfig(output_dir=str(tmp_path / "trl"), packing=True,
                                        packing_strategy="bfd", max_length=capacity,
                                        per_device_train_batch_size=len(packed),
                                        report_to="none", use_cpu=True, bf16=False,
                                        dataloader_num_workers=0))
    trl_rows = list(trainer.train_dataset)
    assert [r["input_ids"] for r in trl_rows] == [r.ids for r in packed]
    assert [r["seq_lengths"] for r in trl_rows] == [r.lengths for r in packed]
    batch = trainer.data_collator(trl_rows)
    assert batch["input_ids"].shape[0] == 1  # padding-free: one row, sequences end to end
    with torch.no_grad():
        want = model(**batch).loss
        ids, mask, labels = lm_batch(packed, tok.pad_token_id)
        got = lm_loss(model, ids, mask, labels, position_ids=packed_positions(packed,
                                                                               ids.shape[1]))
    assert abs(got - want) < 1e-6, (got, want)


def test_rlxf_sft_packing_trains_and_records_its_rows(tmp_path):
    from rlxf.config import TuneSFTConfig
    from rlxf.tune.recipes import run_sft

    base = save_model_dir(tmp_path / "base", "llama")
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"what is {w} ?", "completion": f" {w} ."})
                            + "\n" for w in ["paris", "the sea", "a haiku", "time"] * 3))
    cfg = TuneSFTConfig(steps=2, batch_size=2, lr=1e-3, warmup_steps=0, max_length=64,
                        packing=True, checkpoint_every=1)
    record = run_sft(base, data, tmp_path / "out", cfg)
    assert 0 < record["metrics"]["packed_rows"] < 12
    assert (tmp_path / "out" / "config.json").exists()
