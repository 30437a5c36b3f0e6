"""Gao et al. over-optimisation fits: recovery of known α, β and hand-computed peaks, reasons for
no fit, and the report's overoptimisation section built from a sweep in a fake run directory."""

import json
import math

import jsonschema
import pytest

from rlxf.audit.gao_fit import fit_curve, fit_points, peak
from rlxf.audit.report import SCHEMA_PATH, build_report
from rlxf.audit.render import render_markdown
from report_fakes import make_run


def test_peaks_match_hand_computed_values():
    # BoN: R = d(1 - 0.5d): dR/dd = 1 - d = 0 at d* = 1, R* = 1·(1 - 0.5) = 0.5
    assert peak("bon", 1.0, 0.5) == (1.0, 0.5)
    # RL: R = d(0.5 - 0.5 log d): dR/dd = 0.5 - 0.5 log d - 0.5 = 0 at d* = 1, R* = 0.5
    assert peak("rl", 0.5, 0.5) == (1.0, 0.5)
    # RL with α = 1, β = 0.5: d* = e^(1/0.5 - 1) = e, R* = 0.5e
    d, r = peak("rl", 1.0, 0.5)
    assert abs(d - math.e) < 1e-15 and abs(r - 0.5 * math.e) < 1e-15
    assert peak("rl", 1.0, -0.1) == (None, None)  # gold never turns down


@pytest.mark.parametrize("form,alpha,beta", [("bon", 0.8, 0.3), ("rl", 0.4, 0.25)])
def test_fit_recovers_the_parameters_of_exact_curves(form, alpha, beta):
    d = [0.2, 0.5, 0.9, 1.4, 2.0, 2.7]
    gains = [x * (alpha - beta * (x if form == "bon" else math.log(x))) for x in d]
    f = fit_curve(form, d, gains)
    assert abs(f["alpha"] - alpha) < 1e-6 and abs(f["beta"] - beta) < 1e-6
    assert abs(f["r2"] - 1.0) < 1e-9
    assert f["peak_sqrt_kl"] == pytest.approx(peak(form, alpha, beta)[0], rel=1e-6)


def test_fit_points_measures_gains_from_the_sft_baseline_and_says_why_not():
    # gold = 0.7 + d(0.4 - 0.25 log d), proxy rising linearly: kl = d²
    pts = [{"kl": 0.0, "reward_gold": 0.7, "reward_proxy": 0.1}]
    for d in (0.5, 1.0, 1.5, 2.0, 3.0):
        pts.append({"kl": d * d, "reward_gold": 0.7 + d * (0.4 - 0.25 * math.log(d)),
                    "reward_proxy": 0.1 + 0.3 * d})
    fit, why = fit_points("rl", pts)
    assert why is None and fit["n_points"] == 5
    assert fit["gold"]["alpha"] == pytest.approx(0.4, abs=1e-6)
    # peak gold = baseline + β e^(α/β - 1) = 0.7 + 0.25 e^0.6
    assert fit["gold"]["peak"] == pytest.approx(0.7 + 0.25 * math.exp(0.6), abs=1e-6)
    assert fit["proxy"]["r2"] > 0.9
    fit, why = fit_points("rl", pts[:3])
    assert fit is None and "needs at least 4" in why


def test_report_fits_a_best_of_n_sweep(tmp_path):
    root = tmp_path / "run"
    make_run(root)
    # SFT (step 0) then best-of-n with gold = 0.6 + d(0.5 - 0.2d), d = sqrt(analytic KL)
    members = []
    for n in (2, 4, 8, 16):
        kl = math.log(n) - (n - 1) / n
        d = math.sqrt(kl)
        members.append({"name": f"bon_n={n}", "value": n, "dir": f"sweep/bon_n={n}", "history": [
            {"step": 0, "kl/to_sft": 0.0, "reward/proxy": 0.0, "gold/utility": 0.6},
            {"step": 1, "kl/to_sft": 0.9 * kl, "kl/bon_analytic": kl, "reward/proxy": d,
             "gold/utility": 0.6 + d * (0.5 - 0.2 * d), "rate/sycophancy": 0.1}]})
    (root / "sweep").mkdir()
    (root / "sweep" / "sweep.json").write_text(json.dumps(
        {"parameter": "policy.bon_n", "members": members}))
    report = build_report(root)
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    oo = report["overoptimisation"]
    assert oo["fit"]["history"] is None and "fit/history" in oo["notes"]
    gold = oo["fit"]["sweep"]["gold"]
    assert gold["alpha"] == pytest.approx(0.5, abs=1e-4) and gold["r2"] == pytest.approx(1.0)
    assert gold["peak_sqrt_kl"] == pytest.approx(1.25, abs=1e-3)  # α/(2β) = 0.5/0.4
    check = {c["n"]: c["relative_error"] for c in oo["sweep"]["bon_kl_check"]}
    assert check[16] == pytest.approx(-0.1, abs=1e-6)
    # members from before policy/bon_samples.jsonl: no per-prompt intervals, and a note says why
    assert oo["sweep"]["intervals"] is None and "bon_samples" in oo["sweep"]["notes"]["intervals"]
    assert "Gao et al. fit" in render_markdown(report)
