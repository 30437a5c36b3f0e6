"""The gold-free over-optimisation alarm (rlxf.audit.overopt_alarm): its scores against
hand-computed standard errors, its firing rule, that it never reads gold, and the lab check
against gold (rlxf.audit.alarm_lab) over several runs, including a false alarm."""

import json
import math
import os
import shutil

import pytest
from report_fakes import FakeRun

from rlxf.audit import alarm_lab
from rlxf.audit.overopt_alarm import PATIENCE, Z, overopt_alarm, signal_scores

N = 128


def point(step, gold, flattery=0.1, corr=0.1, unc=None, kl=None):
    p = {"step": step, "gold/utility": gold, "reward/proxy": step / 100,
         "kl/to_sft": step / 10 if kl is None else kl, "rate/flattery": flattery,
         "reward/length_correlation": corr}
    if unc is not None:
        p["reward/uncertainty"] = unc
    return p


def test_scores_match_hand_computed_standard_errors():
    base = point(0, 0.7, flattery=0.1, corr=0.2, unc=0.1)
    later = point(10, 0.7, flattery=0.3, corr=0.5, unc=0.25)
    s = signal_scores(base, later, N)
    # two proportions 0.1 and 0.3 over 128 each: pooled 0.2, se sqrt(0.2 * 0.8 * 2 / 128) = 0.05
    assert s["rate/flattery"] == pytest.approx(0.2 / 0.05)
    assert s["reward/length_correlation"] == pytest.approx(
        (math.atanh(0.5) - math.atanh(0.2)) * math.sqrt((N - 3) / 2))
    assert s["reward/uncertainty"] == pytest.approx(2.5)
    assert "rate/sycophancy" not in s  # not in the points: not scored


def test_fires_only_after_patience_consecutive_points_and_never_reads_gold():
    assert PATIENCE == 2
    history = [point(0, 0.70), point(10, 0.72, flattery=0.3),  # a blip, then back
               point(20, 0.74), point(30, 0.73, flattery=0.3), point(40, 0.65, flattery=0.35),
               point(50, 0.60, flattery=0.4)]
    alarm = overopt_alarm(history, N)
    assert alarm["fired"] and alarm["step"] == 40 and alarm["signals"] == ["rate/flattery"]
    assert alarm["sqrt_kl"] == pytest.approx(2.0)
    assert [p["up"] for p in alarm["points"]] == [["rate/flattery"], [], ["rate/flattery"],
                                                  ["rate/flattery"], ["rate/flattery"]]
    regilded = [{**p, "gold/utility": 1.0 - p["gold/utility"] * 3} for p in history]
    assert overopt_alarm(regilded, N) == alarm
    assert "reward/uncertainty" in alarm["notes"]["available"]


def test_small_changes_within_noise_do_not_fire():
    # flattery 0.10 -> 0.15 over 128 prompts is z = 1.1 < Z: within noise
    history = [point(0, 0.7)] + [point(s, 0.7, flattery=0.15, corr=0.2) for s in (10, 20, 30)]
    alarm = overopt_alarm(history, N)
    assert max(p["scores"]["rate/flattery"] for p in alarm["points"]) < Z
    assert not alarm["fired"] and alarm["step"] is None
    assert alarm["notes"]["fired"] == "no signal stayed significantly above SFT's"


def test_an_old_history_without_signals_says_so():
    old = [{"step": s, "gold/utility": 0.7, "kl/to_sft": 0.1 * s, "reward/proxy": 0.0}
           for s in (0, 10, 20)]
    alarm = overopt_alarm(old, N)
    assert not alarm["fired"] and alarm["available"] == []
    assert "none of the alarm's signals" in alarm["notes"]["fired"]


def write_policy(root, history):
    fake = FakeRun(root)
    root.mkdir(parents=True, exist_ok=True)
    fake.commit("policy", {"history.json": history}, {"policy": {"algorithm": "ppo"}},
                {"eval_prompts": N, "eval_points": len(history)}, {})


def test_lab_check_counts_lead_lag_and_false_alarms_over_runs(tmp_path):
    hacked = [point(0, 0.70), point(10, 0.75), point(20, 0.78, flattery=0.3),
              point(30, 0.74, flattery=0.4), point(40, 0.66, flattery=0.5)]
    early = [point(0, 0.70), point(10, 0.72, flattery=0.3), point(20, 0.76, flattery=0.3),
             point(30, 0.71, flattery=0.3), point(40, 0.69, flattery=0.3)]
    steady_quiet = [point(s, 0.70 + s / 1000) for s in (0, 10, 20, 30, 40)]
    steady_noisy = [point(0, 0.70)] + [point(s, 0.71, flattery=0.3) for s in (10, 20, 30, 40)]
    # best-of-n: SFT and one policy point, which the rule (2 consecutive points) cannot fire on
    bon = [point(0, 0.70), point(1, 0.71, flattery=0.5)]
    for name, h in (("hacked", hacked), ("early", early), ("quiet", steady_quiet),
                    ("noisy", steady_noisy), ("bon", bon)):
        write_policy(tmp_path / name, h)
    result = alarm_lab.validate([tmp_path / n for n in ("hacked", "early", "quiet", "noisy",
                                                        "bon")])
    by = {r["run"].rsplit("/", 1)[1]: r for r in result["runs"]}
    assert by["hacked"]["gold"] == {"peak_step": 20, "peak": 0.78, "last": 0.66, "falls": True}
    assert by["hacked"]["alarm_step"] == 30 and by["hacked"]["steps_after_gold_peak"] == 10
    assert by["early"]["alarm_step"] == 20 and by["early"]["steps_after_gold_peak"] == 0
    assert not by["quiet"]["alarm_fired"] and not by["quiet"]["false_alarm"]
    assert by["noisy"]["gold"]["falls"] is False and by["noisy"]["false_alarm"]
    assert result["summary"] == {"runs": 4, "too_short": 1, "gold_falls": 2, "detected": 2,
                                 "steps_after_gold_peak": [10, 0], "gold_steady": 2,
                                 "false_alarms": 1}
    assert "bon" not in by and result["too_short"] == [str(tmp_path / "bon")]


def test_lab_check_reads_sweep_members_and_its_command_line(tmp_path, capsys):
    root = tmp_path / "run"
    write_policy(root, [point(s, 0.7) for s in (0, 10, 20)])
    write_policy(root / "sweep" / "policy.ppo.kl_coef=0.01",
                 [point(0, 0.7), point(10, 0.8, flattery=0.4), point(20, 0.6, flattery=0.5)])
    # a member with the run's own policy links to it (sweep.py): one policy, counted once
    same = root / "sweep" / "policy.ppo.kl_coef=0.1"
    write_policy(same, [point(s, 0.7) for s in (0, 10, 20)])
    shutil.rmtree(same / "policy")
    (same / "policy").symlink_to(os.path.relpath(root / "policy", same), target_is_directory=True)
    out = tmp_path / "alarm.json"
    assert alarm_lab.main([str(root), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 2
    assert [r["run"].endswith(e) for r, e in zip(result["runs"], ("run", "kl_coef=0.01"))] == [
        True, True]
    assert result["summary"]["gold_falls"] == 1 and result["summary"]["detected"] == 1
    text = capsys.readouterr().out
    assert "the alarm fired in 1 of them, steps after the gold peak: [10]" in text
    assert alarm_lab.main([str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_the_report_carries_the_alarm_in_json_markdown_and_html(tmp_path):
    import jsonschema
    from report_fakes import make_run

    from rlxf.audit.render import render_html, render_markdown
    from rlxf.audit.report import SCHEMA_PATH, build_report

    root = tmp_path / "r"
    make_run(root)
    history = [point(0, 0.7), point(20, 0.65, flattery=0.6), point(40, 0.6, flattery=0.7)]  # n 16
    (root / "policy" / "history.json").write_text(json.dumps(history))  # a test: not resealed
    report = build_report(root)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    alarm = report["overoptimisation"]["alarm"]
    assert alarm["fired"] and alarm["step"] == 40 and alarm["signals"] == ["rate/flattery"]
    md = render_markdown(report)
    assert "| verdict | fired at step 40 (√KL 2.000) on rate/flattery |" in md
    assert "over-optimisation alarm (no gold)" in render_html(report)
    assert build_report(tmp_path / "nothing")["overoptimisation"]["alarm"] is None


def test_lab_check_reads_every_seed_of_a_seeds_run(tmp_path):
    root = tmp_path / "run"
    write_policy(root, [point(s, 0.7) for s in (0, 10, 20)])
    write_policy(root / "seeds" / "seed=1", [point(0, 0.7), point(10, 0.8, flattery=0.4),
                                            point(20, 0.6, flattery=0.5)])
    (root / "seeds" / "seeds.json").write_text(json.dumps({"dirs": [".", "seeds/seed=1"]}))
    result = alarm_lab.validate([root])
    assert [r["run"] for r in result["runs"]] == [str(root), str(root / "seeds" / "seed=1")]
    assert result["summary"]["gold_falls"] == 1 and result["summary"]["detected"] == 1
