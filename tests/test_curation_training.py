"""Partial and tied rankings as the annotation app exports them are trained on: the reward
stage turns them into weak-order examples (train/reward_data.preference_rankings) and a tiny
reward model trained on them with Plackett-Luce learns their order (train/reward.py)."""

import json

import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

from rlxf.config import TrainConfig
from rlxf.feedback.record import read_records
from rlxf.models.tokenizer import build_word_tokenizer, prompt_ids, response_ids
from rlxf.train.loop import Checkpointer
from rlxf.train.reward import plackett_luce_batch, train_reward_model
from rlxf.train.reward_data import preference_rankings


def exported(i, responses, ranking, ties=None):
    """A ranking record shaped as `rlxf annotate` exports it."""
    return {"id": f"r{i}/h-0000000{i}", "item_id": f"r{i}", "type": "ranking",
            "prompt": "which is best ?", "responses": responses, "ranking": ranking,
            **({"ties": ties} if ties else {}), "annotator": {"id": f"h-0000000{i}"},
            "source": "human", "provenance": {"app": "rlxf annotate", "task": "ranking"}}


def test_a_partial_ranking_2_0_of_four_and_a_tie_train_a_reward_model(tmp_path):
    tok = build_word_tokenizer(["good", "ok", "bad", "worse", "which", "is", "best", "?"])
    records = [exported(1, ["ok", "worse", "good", "bad"], [2, 0]),  # good > ok > {worse, bad}
               exported(2, ["good", "ok", "bad"], [0, 1, 2], ties=[[0, 1]])]  # good = ok > bad
    (tmp_path / "feedback").mkdir()
    (tmp_path / "feedback" / "feedback.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records))
    train, heldout = preference_rankings(read_records(tmp_path / "feedback" / "feedback.jsonl"),
                                         tok, seed=0, heldout_fraction=0.0)
    assert heldout == []
    ids = {w: response_ids(tok, w) for w in ("good", "ok", "bad", "worse")}
    p = prompt_ids(tok, "which is best ?")
    assert train == [(p, [ids["good"], ids["ok"], ids["worse"], ids["bad"]], [0, 1, 2, 2]),
                     (p, [ids["good"], ids["ok"], ids["bad"]], [0, 0, 1])]

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(GPT2Config(
        vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2, num_labels=1,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=tok.pad_token_id))
    pad = tok.pad_token_id
    before = plackett_luce_batch(model, train, pad)[0].item()
    cfg = TrainConfig(steps=40, batch_size=2, lr=1e-2, warmup_steps=0, checkpoint_every=1000)
    result = train_reward_model(model, train, cfg, pad, 0, Checkpointer(tmp_path / "ckpt", 1000),
                                batch_loss=plackett_luce_batch)
    after = plackett_luce_batch(model, train, pad)[0].item()
    assert result["steps"] == 40 and after < before - 0.5
    with torch.no_grad():
        r = {w: model(input_ids=torch.tensor([p + ids[w]])).logits[0, 0].item() for w in ids}
    assert r["good"] > max(r["worse"], r["bad"]) and r["ok"] > max(r["worse"], r["bad"])
