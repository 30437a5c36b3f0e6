"""The report's intervals (rlxf.audit.intervals) against closed forms, and the readings built on
them: "within noise" exactly where a change's interval spans zero, trade-offs only beyond
noise, no Gao peak from a fit that does not fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlxf.audit import gao_fit
from rlxf.audit.failure_modes import attach_intervals
from rlxf.audit.intervals import (POWER_Z, Bootstrap, Clusters, draw_weights, ratio, reading,
                                  sd, spans_zero)
from rlxf.audit.report import _tensions_section


def _clusters(values_by_seed: list[list[float]]) -> Clusters:
    c = Clusters()
    for s, values in enumerate(values_by_seed):
        for v in values:
            c.add(s, {"x": v, "x2": v * v, "n": 1.0})
    return c


def test_draw_weights_resample_seeds_then_prompts():
    rng = np.random.default_rng(1)
    seeds = [0] * 5 + [1] * 3 + [2] * 4
    w = draw_weights(seeds, 400, rng)
    sizes = np.array([5, 3, 4])
    for row in w:
        blocks = np.array([row[:5].sum(), row[5:8].sum(), row[8:].sum()])
        counts = blocks / sizes  # how often each seed was drawn: whole numbers summing to 3
        assert np.allclose(counts, np.round(counts)) and counts.sum() == pytest.approx(3)
    one = draw_weights([0] * 7, 50, rng)
    assert np.all(one.sum(1) == 7) and np.all(one == np.round(one))


def test_mean_interval_matches_the_normal_closed_form():
    # One seed, 400 iid prompts: the bootstrap SE of a mean is s / sqrt(n) (to sampling error
    # of the bootstrap, a few percent with 2000 draws) and the interval mean ± 1.96 SE.
    x = np.random.default_rng(7).normal(0.3, 1.0, size=400)
    boot = Bootstrap.of(_clusters([list(x)]))
    iv = boot.interval(ratio("x", "n"), change=True)
    se = x.std(ddof=0) / math.sqrt(len(x))
    assert iv["value"] == pytest.approx(x.mean(), abs=1e-12)
    assert iv["se"] == pytest.approx(se, rel=0.08)
    assert iv["ci95"][0] == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert iv["ci95"][1] == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert iv["mde"] == pytest.approx(POWER_Z * iv["se"])
    assert iv["within_noise"] is False  # 0.3 is ~6 SEs from zero
    sd_iv = boot.interval(sd("x", "x2", "n"))
    assert sd_iv["value"] == pytest.approx(x.std(ddof=0), abs=1e-9)


def test_seed_level_noise_widens_the_interval():
    # Three seeds whose means differ by far more than their prompts vary: resampling only
    # prompts would give a tight interval; resampling seeds must cover their spread.
    rng = np.random.default_rng(3)
    seeds = [list(rng.normal(mu, 0.01, size=50)) for mu in (-0.2, 0.0, 0.25)]
    iv = Bootstrap.of(_clusters(seeds)).interval(ratio("x", "n"), change=True)
    assert iv["ci95"][0] < -0.1 and iv["ci95"][1] > 0.1
    assert iv["within_noise"] is True
    assert iv["n"]["seeds"] == 3 and iv["n"]["clusters"] == 150


def test_one_cluster_has_no_interval():
    iv = Bootstrap.of(_clusters([[0.5]])).interval(ratio("x", "n"), change=True,
                                                   n={"prompts": 1})
    assert iv["value"] == 0.5 and iv["ci95"] is None and iv["within_noise"] is None
    assert "no interval" in reading(iv, lambda v: f"{v:+.2f}")


def test_spans_zero_and_reading():
    assert spans_zero([-0.1, 0.2]) and spans_zero([0.0, 0.2]) and not spans_zero([0.01, 0.2])
    iv = {"value": 0.02, "ci95": [-0.01, 0.05], "within_noise": True}
    assert reading(iv, lambda v: f"{v:+.2f}") == "+0.02 [-0.01, +0.05], within noise"
    iv = {"value": -0.2, "ci95": [-0.3, -0.1], "within_noise": False}
    assert reading(iv, lambda v: f"{v:+.2f}").endswith("beyond noise")


def _mode(id_, number):
    return {"id": id_, "title": id_, "number": number, "number_label": "", "definition": "",
            "reading": "Reading.", "values": {}, "notes": {}}


def test_attach_intervals_marks_each_change():
    noise = {"value": 0.01, "ci95": [-0.02, 0.04], "se": 0.015, "mde": 0.042,
             "n": {"seeds": 3, "prompts": 40, "samples": 160}, "within_noise": True}
    real = {**noise, "value": 0.2, "ci95": [0.1, 0.3], "within_noise": False}
    modes = attach_intervals([_mode("sycophancy", 0.4), _mode("reward_hacking", 0.2),
                              _mode("backdoor", None)],
                             {"sycophancy": {"number": {**noise, "value": 0.4,
                                                        "ci95": [0.3, 0.5]}, "change": noise},
                              "reward_hacking": {"number": real, "change": real}})
    syc, hack, back = modes
    assert syc["ci95"] == [0.3, 0.5] and syc["n"]["prompts"] == 40
    assert "within noise" in syc["reading"] and "+1.0 points [-2.0 points, +4.0 points]" in \
        syc["reading"]
    assert "beyond noise" in hack["reading"] and "within noise" not in hack["reading"]
    assert back["ci95"] is None and back["n"] is None and back["reading"] == "Reading."


def _models(per_family_sft, per_family_pol):
    return {"base": {"per_family": None}, "sft": {"per_family": per_family_sft},
            "policy": {"per_family": per_family_pol}}


def test_tradeoffs_come_from_intervals_not_a_fixed_threshold():
    sft = {"harmful": {"helpful": 0.2, "harmless": 0.9, "honest": 0.8, "utility": 0.6},
           "benign": {"helpful": 0.5, "harmless": 0.9, "honest": 0.8, "utility": 0.7}}
    pol = {"harmful": {"helpful": 0.5, "harmless": 0.6, "honest": 0.8, "utility": 0.6},
           "benign": {"helpful": 0.8, "harmless": 0.6, "honest": 0.8, "utility": 0.7}}

    def iv(lo, hi):
        return {"value": (lo + hi) / 2, "ci95": [lo, hi], "n": {}, "within_noise": lo <= 0 <= hi}
    intervals = {  # harmful: both moves beyond noise; benign: the same deltas, but within noise
        "harmful": {"helpful": iv(0.1, 0.5), "harmless": iv(-0.5, -0.1),
                    "honest": iv(-0.1, 0.1), "utility": iv(-0.1, 0.1)},
        "benign": {"helpful": iv(-0.1, 0.7), "harmless": iv(-0.7, 0.1),
                   "honest": iv(-0.1, 0.1), "utility": iv(-0.1, 0.1)}}
    t = _tensions_section(_models(sft, pol), intervals)
    assert t["tradeoffs"] == ["harmful: harmless -0.30, helpful +0.30"]
    assert any("Within noise" in r and "benign" in r for r in t["readings"])
    assert t["intervals"]["benign"]["helpful"]["within_noise"] is True


def test_gao_fit_reports_no_peak_when_it_does_not_fit():
    d = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    good = [x * (1.0 - 0.3 * x) for x in d]  # exact best-of-n curve: peak at 1/(2*0.3)
    f = gao_fit.fit_curve("bon", d, good)
    assert f["r2"] == pytest.approx(1.0) and f["peak_sqrt_kl"] == pytest.approx(1 / 0.6)
    assert f["alpha_ci95"][0] <= 1.0 <= f["alpha_ci95"][1]
    noisy = [0.05, -0.04, 0.06, -0.05, 0.04, -0.06]  # no curve: R² far below 0.8
    f = gao_fit.fit_curve("bon", d, noisy)
    assert f["r2"] < gao_fit.MIN_R2
    assert f["peak_sqrt_kl"] is None and f["peak_gain"] is None and "R²" in f["no_peak"]
