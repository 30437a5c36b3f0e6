"""Multi-head reward models: a pair trains only the head it names; heads are saved with their
names and load back (the cost-model interface); best-of-n per group, average and worst-off."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, GPT2Config

from rlxf.feedback.record import FeedbackRecord
from rlxf.models.reward_heads import (ASPECTS_DIR, AspectRewardModel, GroupRewardModel,
                                      load_aspect_model, load_group_model)
from rlxf.models.reward_scores import score_heads
from rlxf.models.tokenizer import build_word_tokenizer
from rlxf.stages.reward_groups import best_of_n_choices, group_labels, zscores
from rlxf.train.losses import bradley_terry_loss
from rlxf.train.reward import head_pair_batch

TOK = build_word_tokenizer(["a", "b", "c", "d"])


def tiny_model(heads: int, seed: int = 0):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(TOK), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                        pad_token_id=TOK.pad_token_id, num_labels=heads, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0)
    return AutoModelForSequenceClassification.from_config(config).double()


def test_a_pair_trains_only_the_head_it_names():
    model = tiny_model(3)
    pairs = [(2, [1, 4], [6, 7], [8, 9]), (2, [1, 4], [7], [9, 6])]
    loss, _ = head_pair_batch(model, pairs, TOK.pad_token_id)
    loss.backward()
    grad = model.score.weight.grad  # (heads, hidden)
    assert grad[0].abs().sum() == 0 and grad[1].abs().sum() == 0 and grad[2].abs().sum() > 0
    # and the loss is Bradley-Terry on head 2's rewards
    with torch.no_grad():
        rows = score_heads(model, [[1, 4]] * 4, [[6, 7], [7], [8, 9], [9, 6]], TOK.pad_token_id)
    expected = bradley_terry_loss(torch.tensor([rows[0][2], rows[1][2]], dtype=torch.float64),
                                  torch.tensor([rows[2][2], rows[3][2]], dtype=torch.float64))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-9)


def test_aspect_model_saves_and_loads_as_the_cost_model(tmp_path):
    model = tiny_model(3)
    weights = {"helpful": 0.3, "harmless": 0.45, "honest": 0.25}
    AspectRewardModel(model, ["helpful", "harmless", "honest"], weights).save(
        tmp_path / ASPECTS_DIR, TOK)
    loaded = load_aspect_model(tmp_path)
    prompts, responses = [[1, 4, 6]] * 2, [[7, 8, 2], [9, 2]]
    scores = loaded.score(prompts, responses, TOK.pad_token_id)
    assert sorted(scores) == ["harmless", "helpful", "honest"]
    assert all(len(v) == 2 for v in scores.values())
    direct = score_heads(model, prompts, responses, TOK.pad_token_id)
    assert scores["harmless"] == pytest.approx([r[1] for r in direct], abs=1e-9)
    assert loaded.combined(prompts, responses, TOK.pad_token_id) == pytest.approx(
        [0.3 * r[0] + 0.45 * r[1] + 0.25 * r[2] for r in direct], abs=1e-9)
    with pytest.raises(FileNotFoundError, match="aspects = true"):
        load_aspect_model(tmp_path / "nowhere")


def test_group_model_scores_one_group_and_names_unknown_ones(tmp_path):
    GroupRewardModel(tiny_model(2), ["crowd", "cautious"]).save(tmp_path / "groups", TOK)
    model = load_group_model(tmp_path)
    a = model.score([[1, 4]], [[6, 2]], TOK.pad_token_id, group="crowd")
    b = model.score([[1, 4]], [[6, 2]], TOK.pad_token_id, group="cautious")
    assert len(a) == 1 and a != b
    with pytest.raises(KeyError, match="crowd, cautious"):
        model.score([[1, 4]], [[6, 2]], TOK.pad_token_id, group="nobody")


def test_best_of_n_for_each_group_the_average_and_the_worst_off():
    assert zscores([1.0, 3.0]) == [-1.0, 1.0] and zscores([2.0, 2.0]) == [0.0, 0.0]
    # one prompt, three candidates; group x loves 0, group y loves 2, both like 1 well enough
    per_group = {"x": [10.0, 8.0, 0.0], "y": [0.0, 8.0, 10.0]}
    # z-scores: x = (1.10, 0.78, -1.88)·, y mirrored; average favours 1 (0.78 > 0.61 - ...)
    picks = best_of_n_choices(per_group, n=3)
    assert picks["x"] == [0] and picks["y"] == [2]
    assert picks["worst_off"] == [1]  # min(z_x, z_y) is highest for the compromise
    assert picks["average"] == [1]
    # two prompts of two candidates each: indices are into the flat list
    assert best_of_n_choices({"x": [0.0, 1.0, 5.0, 4.0]}, n=2)["x"] == [1, 2]


def test_each_group_gets_its_own_majority():
    def rec(judge, group, choice):
        return FeedbackRecord(id=judge, item_id="i", type="pairwise", prompt="q", responses=[
            "a", "b"], choice=choice, annotator={"id": judge, "group": group}, source="human")
    labels = group_labels([rec("1", "x", 0), rec("2", "x", 0), rec("3", "y", 1),
                           rec("4", "z", 0), rec("5", "z", 1)])
    assert labels == {"i": {"x": "a", "y": "b"}}  # z split evenly: no label
