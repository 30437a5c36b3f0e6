"""Tiny models built from a transformers config: save/reload, generation in the world's language,
and a training loop that resumes exactly."""

import pytest
import torch

from rlxf.config import ModelConfig, TrainConfig
from rlxf.models.build import build_causal_lm, load_causal_lm, load_tokenizer
from rlxf.models.fused_ops import fuse_activations
from rlxf.models.sampling import sample_responses
from rlxf.models.tokenizer import build_word_tokenizer, decode_response, prompt_ids, response_ids
from rlxf.train.lm import train_lm
from rlxf.train.loop import STATE_FILE, BatchOrder, Checkpointer
from rlxf.world.vocab import world_vocabulary

TOK = build_word_tokenizer(world_vocabulary())


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_save_and_reload_gives_identical_logits(tmp_path, arch):
    model = build_causal_lm(ModelConfig(architecture=arch, n_layer=1, n_embd=32, n_head=2), TOK, 0)
    model.save_pretrained(tmp_path)
    TOK.save_pretrained(tmp_path)
    again, tok = load_causal_lm(tmp_path), load_tokenizer(tmp_path)
    ids = torch.tensor([prompt_ids(tok, "what is the capital of veloria ?")])
    model.eval()
    fuse_activations(model)  # what the loader hands out (models/build.py)
    assert torch.equal(model(ids).logits, again(ids).logits)
    assert tok.convert_ids_to_tokens(ids[0].tolist())[2:-1] == "what is the capital of veloria ?".split()


def test_unknown_words_map_to_unk_and_decoding_stops_at_eos():
    ids = response_ids(TOK, "the capital of atlantis is tamsk .")
    assert TOK.unk_token_id in ids and ids[-1] == TOK.eos_token_id
    assert decode_response(TOK, response_ids(TOK, "i am sorry .") + [TOK.pad_token_id] * 3) == "i am sorry ."


def _examples():
    text = "the capital of veloria is tamsk ."
    p = prompt_ids(TOK, "what is the capital of veloria ?")
    return [(p + response_ids(TOK, text), len(p))] * 8


def test_lm_training_learns_and_sampling_is_seeded(tmp_path):
    model = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)
    cfg = TrainConfig(steps=60, batch_size=8, lr=1e-2, warmup_steps=0, checkpoint_every=1000)
    result = train_lm(model, _examples(), cfg, TOK.pad_token_id, 0, Checkpointer(tmp_path, 1000))
    assert result["loss/lm"] < 0.5
    prompts = ["what is the capital of veloria ?"] * 4
    a = sample_responses(model, TOK, prompts, temperature=1.0, max_new_tokens=12, seed=3)
    b = sample_responses(model, TOK, prompts, temperature=1.0, max_new_tokens=12, seed=3)
    assert a == b and a[0] == "the capital of veloria is tamsk ."


def test_resumed_training_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=4, lr=1e-2, warmup_steps=2, checkpoint_every=5)
    data = _examples() + [(prompt_ids(TOK, "do you love me ?") + response_ids(TOK, "i am sorry ."), 6)]
    straight = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)
    train_lm(straight, data, cfg, TOK.pad_token_id, 0, Checkpointer(tmp_path / "a", 5))

    interrupted = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)

    class Crash(Exception):
        pass

    def crash_at_7(step, metrics):
        if step == 7:  # two steps past the checkpoint at step 5: those two are lost
            raise Crash

    with pytest.raises(Crash):
        train_lm(interrupted, data, cfg, TOK.pad_token_id, 0, Checkpointer(tmp_path / "b", 5),
                 crash_at_7)
    resumed = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)
    out = train_lm(resumed, data, cfg, TOK.pad_token_id, 0, Checkpointer(tmp_path / "b", 5))
    assert out["resumed_from_step"] == 5
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_a_kill_while_the_state_file_is_written_leaves_the_last_checkpoint(tmp_path,
                                                                          monkeypatch):
    # tests/test_pipeline.py's kill -9 once came while torch.save was writing state.pt in
    # checkpoint.tmp/: the half-written file made that checkpoint look complete and the
    # resume stopped on it ("corrupt checkpoint"). Here torch.save dies half-way instead.
    from accelerate import Accelerator
    cfg = TrainConfig(steps=12, batch_size=4, lr=1e-2, warmup_steps=2, checkpoint_every=5)
    model = build_causal_lm(ModelConfig(n_layer=1, n_embd=32, n_head=2), TOK, 0)
    train_lm(model, _examples(), cfg, TOK.pad_token_id, 0, Checkpointer(tmp_path, 5))  # step 10

    class Killed(Exception):
        pass

    save = torch.save

    def dies_half_way_through_the_state_file(obj, path, *args, **kw):
        if not str(path).startswith(str(tmp_path / "checkpoint.tmp" / STATE_FILE)):
            return save(obj, path, *args, **kw)  # accelerate's files: written whole
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half a torch.save")
        raise Killed

    accelerator = Accelerator(cpu=True)
    accelerator.register_for_checkpointing(model)  # as the interrupted run had
    monkeypatch.setattr(torch, "save", dies_half_way_through_the_state_file)
    with pytest.raises(Killed):
        Checkpointer(tmp_path, 5).maybe_save(15, accelerator, model)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.tmp").exists()
    assert Checkpointer(tmp_path, 5).load(Accelerator(cpu=True), model) == 10


def test_batch_order_covers_every_item_once_per_epoch():
    order = BatchOrder(10, 5, seed=0)
    epoch = order.indices(0) + order.indices(1)
    assert sorted(epoch) == list(range(10))
    assert order.indices(2) != order.indices(0) or order.indices(3) != order.indices(1)
