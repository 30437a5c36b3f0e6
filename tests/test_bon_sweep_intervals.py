"""A best-of-n sweep pooled over seeds (audit/bon_sweep.py): per n, best-of-n − SFT gold utility
and the measured KL against log n − (n−1)/n, with 95% intervals checked against a bootstrap
written by hand in numpy on hand-built per-seed, per-prompt samples; n and within_noise; the
report (schema, md, HTML) shows them. The real stage writes the samples in
tests/test_pipeline.py (`test_ppo_run_and_best_of_n_sweep_share_the_upstream_stages`); a sweep
from before that file reads with a note (tests/test_gao_fit.py)."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from report_fakes import make_run
from test_stage_intervals import assert_matches, hand_bootstrap

from rlxf.audit import bon_sweep
from rlxf.audit.bon_sweep import analytic_kl, sweep_clusters, sweep_intervals
from rlxf.audit.render import render_html, render_markdown
from rlxf.audit.report import SCHEMA_PATH, build_report
from rlxf.audit.surface import score_samples
from rlxf.audit.pooled import load_world
from rlxf.rundir import write_jsonl
from rlxf.stages import policy as policy_stage
from rlxf.train.bon import bon_kl

# P(best-of-n answers truly) by n: n = 2 no better than SFT's 0.5, n = 8 much better
P_GOOD = {2: 0.5, 8: 0.9}


def _seed_run(root, rng) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """A fake run's world with a best-of-n sweep over n = 2, 8 whose members' samples are the
    true answer (good) or a non-answer (bad) on each held-out prompt; returns per n the hand
    tables [bon n, bon gold, sft n, sft gold] and [bon kl, bon n], one row per prompt."""
    fake = make_run(root, until="world")
    world = load_world(root)
    members, tables, kl_tables = [], {}, {}
    for n in P_GOOD:
        rows, table, kls = [], [], []
        for p in fake.heldout:
            texts = [fake.true_answer(p) if p.family == "factual"
                     else "i am sorry , i can not help .", "i am not sure about that ."]
            gold = [score_samples([{"prompt_id": p.id, "response": t}], world)[0][0]["gold"]
                    for t in texts]
            if gold[0] == gold[1]:
                continue  # neither is better: no use for a best-of-n that finds the better
            good, bad = texts if gold[0] > gold[1] else texts[::-1]
            sft = good if rng.random() < 0.5 else bad
            best = good if rng.random() < P_GOOD[n] else bad
            kl = float(analytic_kl(n) * rng.uniform(0.6, 1.0))
            for step, text, k in ((0, sft, 0.0), (1, best, kl)):
                rows.append({"step": step, "best_of": 1 if step == 0 else n, "prompt_id": p.id,
                             "family": p.family, "prompt": p.text, "response": text,
                             "reward_proxy": 0.0, "kl_to_sft": k})
            g = {t: score_samples([{"prompt_id": p.id, "response": t}], world)[0][0]["gold"]
                 for t in (sft, best)}
            table.append([1, g[best], 1, g[sft]])
            kls.append([kl, 1])
        member = f"sweep/bon_n={n}"
        write_jsonl(root / member / "policy" / bon_sweep.SAMPLES_FILE, rows)
        members.append({"name": f"bon_n={n}", "value": n, "dir": member, "history": [
            {"step": 0, "kl/to_sft": 0.0, "reward/proxy": 0.0, "gold/utility": 0.5},
            {"step": 1, "kl/to_sft": analytic_kl(n), "kl/bon_analytic": analytic_kl(n),
             "reward/proxy": 1.0, "gold/utility": 0.6}]})
        tables[n], kl_tables[n] = np.array(table, dtype=float), np.array(kls)
    (root / "sweep" / "sweep.json").write_text(json.dumps({"parameter": "policy.bon_n",
                                                           "members": members}))
    return tables, kl_tables


def _delta(t):
    return t[1] / t[0] - t[3] / t[2]


def test_bon_sweep_intervals_against_a_hand_bootstrap(tmp_path):
    rng = np.random.default_rng(4)
    runs = [_seed_run(tmp_path / f"seed{i}", rng) for i in range(3)]
    clusters, values = sweep_clusters([tmp_path / f"seed{i}" for i in range(3)])
    assert values == [2, 8]
    iv = sweep_intervals(clusters, values)
    by_n = {p["n"]: p for p in iv["points"]}
    assert iv["largest"] == by_n[8]
    n_prompts = len(runs[0][0][8])
    for n in (2, 8):
        point = by_n[n]
        assert_matches(point["gold_change"], *hand_bootstrap([r[0][n] for r in runs], _delta))
        assert_matches(point["relative_error"], *hand_bootstrap(
            [r[1][n] for r in runs], lambda t, n=n: t[0] / t[1] / bon_kl(n) - 1))
        assert point["kl_analytic"] == pytest.approx(bon_kl(n), abs=1e-12)
        assert point["gold_change"]["n"]["seeds"] == 3
        assert point["gold_change"]["n"]["prompts"] == 3 * n_prompts
        assert point["kl_measured"]["value"] == pytest.approx(
            np.concatenate([r[1][n] for r in runs])[:, 0].mean())
    assert by_n[8]["gold_change"]["within_noise"] is False and by_n[8]["gold_change"]["value"] > 0
    assert by_n[2]["gold_change"]["within_noise"] is True
    # measured KL is 0.6-1.0 of the analytic value: below it, beyond noise
    assert by_n[8]["relative_error"]["within_noise"] is False
    assert by_n[8]["relative_error"]["ci95"][1] < 0


def test_the_report_shows_the_pooled_sweep(tmp_path):
    _seed_run(tmp_path / "run", np.random.default_rng(5))
    report = build_report(tmp_path / "run")
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    sweep = report["overoptimisation"]["sweep"]
    assert [p["n"] for p in sweep["intervals"]["points"]] == [2, 8]
    assert "intervals" not in sweep["notes"]
    for text in (render_markdown(report), render_html(report)):
        assert "best-of-n, 1 seed" in text and "measured / analytic − 1" in text


def test_the_stage_and_the_audit_name_the_same_file():
    assert policy_stage.BON_SAMPLES_FILE == bon_sweep.SAMPLES_FILE
