"""Curators' agreement numbers: Gwet's AC1 against published worked examples, per-item
agreement by hand, and subsets of annotators and items."""

import pytest

from rlxf.feedback.agreement import gwet_ac1, item_agreement, select, summary


def raw(table: list[list]) -> list[list[dict]]:
    """Rows are units, columns raters, None a missing rating."""
    return [[{"annotator": f"r{k}", "choice": v} for k, v in enumerate(row) if v is not None]
            for row in table]


# Worked example of Gwet, Handbook of Inter-Rater Reliability, 4th ed. (2014): 4 raters classify
# 12 units into 5 categories, none rating every unit. The same table ships as `cac.raw4raters`
# in Gwet's irrCAC package (R; Python port irrCAC 0.4.4, `datasets.raw_4raters`), documented
# with p_a = 0.81818, p_e = 0.19032, AC1 = 0.77544.
GWET_4_RATERS = [
    [1, 1, None, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [None, 5, 5, 5],
    [None, None, 1, 1],
    [None, None, 3, None],
]


def test_gwet_ac1_equals_the_handbooks_four_rater_example():
    assert gwet_ac1(raw(GWET_4_RATERS), categories=[1, 2, 3, 4, 5]) == pytest.approx(
        0.77544, abs=5e-6)
    # p_a by hand: 8 units agree fully; unit 2 and unit 8: 3 of 6 pairs; unit 6: 0 of 6;
    # units 10 and 11 fully; unit 12 has one rating and is left out -> (9 + 0.5 + 0.5) / 11
    per_item = [item_agreement(u) for u in raw(GWET_4_RATERS)]
    assert per_item[1] == per_item[7] == pytest.approx(0.5) and per_item[5] == 0.0
    assert per_item[11] is None
    assert sum(a for a in per_item if a is not None) / 11 == pytest.approx(0.81818, abs=5e-6)


def test_gwet_ac1_equals_the_handbooks_two_abstractor_table():
    # Gwet (2014): 100 pregnant women classified by 2 abstractors as ectopic, abnormal
    # intrauterine (AIU) or normal intrauterine (NIU); rows abstractor 1, columns abstractor 2
    # (irrCAC's `cont3x3abstractors`). Documented: p_a = 0.89, p_e = 0.26992, AC1 = 0.84933.
    table = {("E", "E"): 13, ("AIU", "AIU"): 20, ("AIU", "NIU"): 7, ("NIU", "AIU"): 4,
             ("NIU", "NIU"): 56}
    units = [[a, b] for (a, b), n in table.items() for _ in range(n)]
    assert gwet_ac1(raw(units), categories=["E", "AIU", "NIU"]) == pytest.approx(
        0.84933, abs=5e-6)


def test_ac1_stays_high_where_alpha_collapses_on_a_dominant_label():
    # 19 of 20 items: both say "a"; one item split. Alpha falls (chance agreement on "a" is
    # nearly 1); AC1 does not (Gwet's point). Hand: p_a = 19/20, π_a = 39/40, π_b = 1/40,
    # q = 3: p_e = 2 * (39/40)(1/40) / 2 = 39/1600; AC1 = (0.95 - p_e) / (1 - p_e).
    labels = {f"i{k}": [{"annotator": "x", "choice": "a"}, {"annotator": "y", "choice": "a"}]
              for k in range(19)}
    labels["split"] = [{"annotator": "x", "choice": "a"}, {"annotator": "y", "choice": "b"}]
    s = summary(labels)
    p_e = 39 / 1600
    assert s["gwet_ac1"] == pytest.approx((0.95 - p_e) / (1 - p_e))
    assert s["raw"] == pytest.approx(0.95)
    assert s["krippendorff_alpha"] < 0.1 < 0.9 < s["gwet_ac1"]
    assert (s["items"], s["judgements"], s["annotators"]) == (20, 40, 2)


def test_unknown_labels_are_refused_and_undefined_cases_are_none():
    with pytest.raises(ValueError, match="not among the categories"):
        gwet_ac1(raw([[1, 2]]), categories=[1, 3])
    assert gwet_ac1(raw([[1], [2]]), categories=[1, 2]) is None  # nobody rated twice
    assert item_agreement([{"annotator": "x", "choice": "a"}]) is None


def test_select_keeps_only_the_chosen_annotators_and_items():
    labels = {"i1": [{"annotator": "x", "choice": "a"}, {"annotator": "y", "choice": "b"},
                     {"annotator": "z", "choice": "a"}],
              "i2": [{"annotator": "y", "choice": "a"}]}
    assert select(labels, annotators=["x", "z"]) == {
        "i1": [{"annotator": "x", "choice": "a"}, {"annotator": "z", "choice": "a"}]}
    assert list(select(labels, items=["i2"])) == ["i2"]
    assert summary(select(labels, annotators=["x", "z"]))["raw"] == 1.0
    assert summary(labels)["raw"] == pytest.approx(1 / 3)
