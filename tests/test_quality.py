import pytest

from rlxf.feedback.quality import items_of, krippendorff_alpha, majority, raw_agreement


def item(*choices):
    return [{"annotator": f"a{i}", "choice": c} for i, c in enumerate(choices)]


def test_raw_agreement_counts_annotator_pairs():
    # item 1: 3 pairs, all agree; item 2: (a,a) agree, (a,b) x2 disagree -> 4/6
    assert raw_agreement([item("a", "a", "a"), item("a", "a", "b")]) == pytest.approx(4 / 6)
    assert raw_agreement([item("a")]) is None


def test_krippendorff_alpha_hand_computed():
    # Two coders, four units: (a,a) (b,b) (a,b) (b,b). Pairable values n = 8, n_a = 3, n_b = 5.
    # Coincidences: o_ab = o_ba = 1 (the one split unit, over m_u - 1 = 1).
    # D_o = (o_ab + o_ba) / n = 2/8;  D_e = 2 n_a n_b / (n (n - 1)) = 30/56
    # alpha = 1 - D_o / D_e = 1 - (1/4)(56/30) = 8/15
    data = [item("a", "a"), item("b", "b"), item("a", "b"), item("b", "b")]
    assert krippendorff_alpha(data) == pytest.approx(8 / 15)
    assert krippendorff_alpha([item("a", "a"), item("b", "b")]) == pytest.approx(1.0)


def test_majority_and_ties():
    assert majority(item("a", "b", "b")) == "b"
    assert majority(item("a", "b")) is None


def test_items_of_groups_pairwise_records_and_keeps_ties():
    from rlxf.feedback.record import FeedbackRecord

    def rec(i, item, choice, annotator):
        return FeedbackRecord(id=str(i), item_id=item, type="pairwise", prompt="p",
                              responses=["x", "y"], choice=choice, tie=choice is None,
                              annotator={"id": annotator, "group": "g"}, source="human")
    items = items_of([rec(1, "i1", 0, "u1"), rec(2, "i2", 1, "u1"), rec(3, "i1", None, "u2")])
    assert [[j["choice"] for j in v] for v in items.values()] == [["a", "tie"], ["b"]]
    assert majority(items["i1"]) == "a"
