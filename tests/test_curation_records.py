"""Partial / tied rankings and curators' final labels in the canonical record, and how the
training data reads them: the reward model's batch, the majority pairs, the TRL export."""

import json

import pytest
import torch
from pydantic import ValidationError

from rlxf.data.export import export_trl
from rlxf.feedback.quality import final_labels, items_of
from rlxf.feedback.record import FeedbackRecord
from rlxf.train.losses import plackett_luce_weak_order_loss


def ranking(ranking, ties=None, n=4, **kw):
    return FeedbackRecord(id="r", item_id="i", type="ranking", prompt="p",
                          responses=[f"x{i}" for i in range(n)], ranking=ranking, ties=ties,
                          annotator={"id": "u"}, source="human", **kw)


def pair(i, choice, who, **kw):
    return FeedbackRecord(id=f"{i}/{who}", item_id=i, type="pairwise", prompt="p",
                          responses=["x", "y"], choice=choice, tie=choice is None,
                          annotator={"id": who}, source="human", **kw)


def test_partial_and_tied_rankings_validate_and_give_levels():
    assert ranking([2, 0]).ranking_levels() == [1, 2, 0, 2]  # 2 > 0 > {1, 3}
    assert ranking([2, 0, 1], ties=[[0, 2]]).ranking_levels() == [0, 1, 0, 2]
    assert ranking([3, 1, 0, 2], ties=[[0, 2]]).ranking_levels() == [2, 1, 2, 0]
    assert ranking([1, 0], n=2).ranking_levels() == [1, 0]
    back = FeedbackRecord.model_validate(ranking([2, 0], ties=[[2, 0]]).to_json())
    assert back.ties == [[2, 0]] and back.ranking_levels() == [0, 1, 0, 1]
    for bad, ties in (([], None), ([0, 0], None), ([4], None), ([2, 0, 1], [[2, 1]]),
                      ([2, 0, 1], [[2]]), ([2, 0, 1], [[2, 0], [0, 1]]), ([2, 0], [[2, 3]])):
        with pytest.raises(ValidationError, match="ranking|tie"):
            ranking(bad, ties)
    with pytest.raises(ValidationError, match="ties belong to a ranking"):
        pair("i", 0, "u", ties=[[0, 1]])


def test_a_curators_final_label_is_not_a_vote_and_overrides_the_majority(tmp_path):
    final = pair("i1", 1, "curator", adjudication={"by": "curator", "method": "accepted",
                                                   "accepted_from": "u3"})
    records = [pair("i1", 0, "u1"), pair("i1", 0, "u2"), pair("i1", 1, "u3"), final,
               pair("i2", 0, "u1"), pair("i2", 0, "u2")]
    assert [j["annotator"] for j in items_of(records)["i1"]] == ["u1", "u2", "u3"]
    assert final_labels(records) == {"i1": "b"}
    src = tmp_path / "f.jsonl"
    src.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    export_trl(src, tmp_path / "trl.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("y", "x"), ("x", "y")]


def test_the_reward_batch_trains_partial_and_tied_rankings_with_the_weak_order_loss():
    from rlxf.train.reward import plackett_luce_batch

    class Scorer(torch.nn.Module):
        """A 'reward model' whose reward is a learned value per response token id."""
        def __init__(self):
            super().__init__()
            self.value = torch.nn.Parameter(torch.tensor([0.0, 0.3, -0.2, 0.5, 0.1],
                                                         dtype=torch.float64))

        def forward(self, input_ids, attention_mask):
            last = input_ids.gather(1, attention_mask.sum(1, keepdim=True) - 1)[:, 0]
            return type("Out", (), {"logits": self.value[last][:, None]})

    model = Scorer()
    responses = [[1], [2], [3], [4]]
    # top-2 [2, 0] of 4 (here response ids 3 then 1), and a tie of the first two of three
    batch = [([0], [[3], [1], [2], [4]], [0, 1, 2, 2]), ([0], [[1], [2], [3]], [0, 0, 1]),
             ([0], responses[:2])]
    loss, accuracy = plackett_luce_batch(model, batch, pad_id=0)
    v = model.value.detach()
    expected = (plackett_luce_weak_order_loss(v[[3, 1, 2, 4]][None], torch.tensor([[0, 1, 2, 2]]))
                + plackett_luce_weak_order_loss(v[[1, 2, 3]][None], torch.tensor([[0, 0, 1]]))
                + plackett_luce_weak_order_loss(v[[1, 2]][None], torch.tensor([[0, 1]]))) / 3
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    # strict pairs: (3>1, 3>2, 3>4, 1>2, 1>4), (1>3, 2>3), (1>2) with values .5 .3 -.2 .1
    assert accuracy.item() == pytest.approx(6 / 8)
    loss.backward()
    assert model.value.grad.abs().sum() > 0
