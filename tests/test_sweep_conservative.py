"""`rlxf sweep` over the conservative reward's λ ([sweep] uncertainty_penalty): its members, its
config rules, and the report's reading of each member's over-optimisation (gold lost since its
peak, alone and against the first member, paired by seed), checked against hand computations."""

import json

import pytest
from pydantic import ValidationError

from rlxf.audit.intervals import DRAWS
from rlxf.audit.report import _sweep_section
from rlxf.audit.uncertainty import curve_lost
from rlxf.config import RunConfig
from rlxf.sweep import members, parameter

GRPO = {"reward": {"ensemble": 3}, "policy": {"algorithm": "grpo"}}


def _config(**over) -> RunConfig:
    data = json.loads(json.dumps(GRPO))
    for section, values in over.items():
        data.setdefault(section, {}).update(values)
    return RunConfig.model_validate(data)


def test_members_are_the_mean_minus_std_reward_at_each_lambda():
    cfg = _config(sweep={"uncertainty_penalty": [0.0, 1.0, 2.5]})
    plan = members(cfg)
    assert [name for name, _, _ in plan] == ["uncertainty_penalty=0", "uncertainty_penalty=1",
                                             "uncertainty_penalty=2.5"]
    assert [(c.policy.reward, c.policy.uncertainty_penalty) for _, _, c in plan] == [
        ("mean_minus_std", 0.0), ("mean_minus_std", 1.0), ("mean_minus_std", 2.5)]
    assert all(c.policy.algorithm == "grpo" and c.reward == cfg.reward for _, _, c in plan)
    assert parameter(cfg) == "policy.uncertainty_penalty"


@pytest.mark.parametrize("over,words", [
    ({"reward": {"ensemble": 1}}, "ensemble >= 2"),
    ({"policy": {"algorithm": "dpo"}}, "algorithm grpo, rloo or ppo"),
    ({"sweep": {"uncertainty_penalty": [-1.0]}}, "must be >= 0"),
    ({"sweep": {"uncertainty_penalty": [1.0], "kl_coef": [0.1]}}, "not several"),
])
def test_a_lambda_sweep_that_cannot_run_is_refused(over, words):
    over = {**over, "sweep": {"uncertainty_penalty": [0.0, 1.0], **over.get("sweep", {})}}
    with pytest.raises(ValidationError, match=words):
        _config(**over)


def _history(gold: list[float], parsed: list[float] | None = None) -> list[dict]:
    return [{"step": 10 * i, "gold/utility": g, "kl/to_sft": 0.1 * i, "reward/proxy": 0.2 * i,
             **({"gold/utility_parsed": parsed[i]} if parsed else {})}
            for i, g in enumerate(gold)]


# Two seeds. Control (λ = 0): gold rises then falls in both. Member (λ = 1): falls less.
CONTROL = [[0.70, 0.80, 0.60], [0.70, 0.76, 0.70]]
MEMBER = [[0.70, 0.78, 0.74], [0.70, 0.74, 0.72]]


def _lost(curves):  # last − max of the seeds' mean curve, by hand
    mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(curves[0]))]
    return mean[-1] - max(mean)


def test_gold_lost_since_its_peak_with_an_interval_over_seeds():
    r = curve_lost([_history(c) for c in CONTROL], "gold/utility")
    # mean curve 0.70, 0.78, 0.65: lost −0.13
    assert r["value"] == pytest.approx(-0.13) == pytest.approx(_lost(CONTROL))
    # With two seeds a bootstrap draw takes seed 1 twice, seed 2 twice or one each: its reading
    # is one of these three, and with DRAWS draws both ends occur beyond 2.5% each.
    ends = sorted([_lost([CONTROL[0]]), _lost(CONTROL), _lost([CONTROL[1]])])
    assert DRAWS >= 1000 and r["ci95"] == pytest.approx([ends[0], ends[-1]])
    assert r["n"] == {"seeds": 2, "eval_points": 3} and r["within_noise"] is False


def test_gold_lost_against_a_control_is_paired_by_seed():
    member = [_history(c) for c in MEMBER]
    control = [_history(c) for c in CONTROL]
    r = curve_lost(member, "gold/utility", control)
    assert r["value"] == pytest.approx(_lost(MEMBER) - _lost(CONTROL))  # −0.03 − (−0.13)
    per_seed = sorted(_lost([m]) - _lost([c]) for m, c in zip(MEMBER, CONTROL))
    # paired: a draw takes the same seeds for both, so its reading is one of these three
    assert r["ci95"] == pytest.approx([per_seed[0], per_seed[-1]])
    assert r["value"] > 0 and r["within_noise"] is False
    # a constant offset per seed that is the same in every seed: no spread at all
    shifted = [_history([g + 0.01 * s for g in c]) for s, c in enumerate(CONTROL)]
    same = curve_lost(shifted, "gold/utility", control)
    assert same["value"] == pytest.approx(0.0, abs=1e-12)
    assert same["ci95"] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert curve_lost(member, "gold/utility", control[:1]) is None  # seeds do not pair


def _write_sweep(run, members_gold: dict[str, list[float]]) -> None:
    rows = [{"name": f"uncertainty_penalty={lam:g}", "value": lam,
             "dir": f"sweep/uncertainty_penalty={lam:g}", "history": _history(gold, gold)}
            for lam, gold in members_gold.items()]
    (run / "sweep").mkdir(parents=True)
    (run / "sweep" / "sweep.json").write_text(json.dumps(
        {"parameter": "policy.uncertainty_penalty", "members": rows}))


def test_the_report_reads_each_members_fall_and_its_difference_from_the_first(tmp_path):
    seeds = [tmp_path / "run", tmp_path / "run" / "seeds" / "seed=1"]
    for s, seed_dir in enumerate(seeds):
        _write_sweep(seed_dir, {0.0: CONTROL[s], 1.0: MEMBER[s]})
    section = _sweep_section(seeds[0], seeds)
    assert section["parameter"] == "policy.uncertainty_penalty" and section["seeds"] == 2
    base, first, second = section["points"]
    assert base["value"] is None and "gold_lost" not in base
    assert (first["id"], second["id"]) == ("uncertainty_penalty=0", "uncertainty_penalty=1")
    assert first["gold_lost"]["value"] == pytest.approx(_lost(CONTROL))
    assert second["gold_lost"]["value"] == pytest.approx(_lost(MEMBER))
    assert second["gold_lost_parsed"]["value"] == pytest.approx(_lost(MEMBER))
    assert first["gold_lost_vs_first"] is None
    assert second["gold_lost_vs_first"]["value"] == pytest.approx(_lost(MEMBER) - _lost(CONTROL))
    # each point is the member's last measured point on the seeds' mean curve
    assert second["reward_gold"] == pytest.approx((MEMBER[0][-1] + MEMBER[1][-1]) / 2)
    assert "gold_lost" in section["notes"]


def test_markdown_shows_each_members_fall_with_its_interval(tmp_path):
    from report_fakes import make_run

    from rlxf.audit.render import render_markdown
    from rlxf.audit.report import build_report
    root = tmp_path / "run"
    make_run(root)
    _write_sweep(root, {0.0: CONTROL[0], 1.0: MEMBER[0]})
    md = render_markdown(build_report(root))
    # one seed: no interval; λ = 1 lost 0.04, λ = 0 lost 0.20 (by hand), 0.16 less
    assert "| sweep: policy.uncertainty_penalty | gold lost since its peak [95%] |" in md
    assert "| 0.000 | -0.200 | -0.200 | — |" in md
    assert "| 1.000 | -0.040 | -0.040 | 0.160 |" in md


def test_the_examples_findings_read_the_sweeps_numbers(tmp_path):
    """examples/findings.toml's grpo_conservative paths resolve on a λ sweep's report, each to
    the member's reading (here one seed, so no interval)."""
    import sys
    from pathlib import Path

    from report_fakes import make_run

    from rlxf.audit.findings import finding
    from rlxf.audit.report import build_report
    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    import make_examples
    root = tmp_path / "run"
    make_run(root)
    _write_sweep(root, {0.0: CONTROL[0], 1.0: MEMBER[0], 4.0: CONTROL[1]})
    report = build_report(root)
    ex = next(e for e in make_examples.manifest() if e["name"] == "grpo_conservative")
    assert ex["command"] == "sweep"
    values = [finding(report, spec)["value"] for spec in ex["findings"]]
    # λ = 0: 0.60 − 0.80; λ = 1: 0.74 − 0.78 and the difference; λ = 4: 0.70 − 0.76 and the
    # difference; λ = 0 on parsable answers
    assert values == pytest.approx([-0.20, -0.04, 0.16, -0.06, 0.14, -0.20])
