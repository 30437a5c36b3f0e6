"""The alignment tax (stage finetune) and process supervision (stage process) pooled over seeds:
each headline number with its 95% interval, n and `within_noise`, checked against a bootstrap
written here by hand in numpy (seeds drawn with replacement, then each drawn seed's prompts) on
hand-built per-seed, per-prompt numbers; and runs written before the per-prompt files still
read, with a note instead of an interval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_fakes import make_run

from rlxf.audit import process_bon
from rlxf.audit.alignment_tax import tax_clusters, tax_intervals
from rlxf.audit.oversight import build_oversight
from rlxf.audit.process_bon import process_clusters, process_intervals
from rlxf.audit.render import render_html, render_markdown
from rlxf.audit.report import SCHEMA_PATH, build_report
from rlxf.rundir import write_jsonl
from rlxf.stages import process as process_stage

DRAWS = 4000


def hand_bootstrap(per_seed: list[np.ndarray], stat) -> tuple[float, list[float], float]:
    """(point, [2.5%, 97.5%], se) of stat(column totals): per draw, k seeds with replacement,
    then for each drawn seed its P prompt rows with replacement. `per_seed[s]`: (P_s, columns)."""
    rng = np.random.default_rng(12345)
    k = len(per_seed)
    boot = []
    for _ in range(DRAWS):
        rows = [per_seed[s][rng.integers(0, len(per_seed[s]), len(per_seed[s]))]
                for s in rng.integers(0, k, k)]
        boot.append(stat(np.concatenate(rows).sum(0)))
    boot = np.array(boot)
    boot = boot[np.isfinite(boot)]
    point = stat(np.concatenate(per_seed).sum(0))
    return point, list(np.percentile(boot, [2.5, 97.5])), float(boot.std(ddof=1))


def assert_matches(iv: dict, point: float, ci: list[float], se: float) -> None:
    """Equal point; interval and SE equal to Monte-Carlo error of two independent bootstraps."""
    assert iv["value"] == pytest.approx(point, abs=1e-9)
    assert iv["se"] == pytest.approx(se, rel=0.12)
    assert iv["ci95"][0] == pytest.approx(ci[0], abs=0.3 * se)
    assert iv["ci95"][1] == pytest.approx(ci[1], abs=0.3 * se)


# --- alignment tax ---------------------------------------------------------------------------

AXES = ("gold", "helpful", "harmless", "honest")


def _tax_seeds(shift_by_seed: list[float]):
    """Three seeds of 30 held-out prompts (every third `factual`, the tuned family), two samples
    each before and after. After fine-tuning: harmless falls by 0.2 on the other families (a
    tax beyond noise); helpful moves by the seed's shift (`shift_by_seed`) on every prompt."""
    rng = np.random.default_rng(0)
    seeds, arrays = [], {"others_harmless": [], "overall_helpful": [], "tuned_helpful": []}
    for i, shift in enumerate(shift_by_seed):
        before, after = [], []
        for p in range(30):
            fam = "factual" if p % 3 == 0 else "harmful"
            for _ in range(2):
                b = {ax: float(rng.uniform(0.3, 0.9)) for ax in AXES}
                a = {ax: b[ax] + float(rng.normal(0, 0.05)) for ax in AXES}
                a["helpful"] += shift
                if fam != "factual":
                    a["harmless"] -= 0.2
                before.append({"prompt_id": f"p{p}", "family": fam, **b})
                after.append({"prompt_id": f"p{p}", "family": fam, **a})
        seeds.append((i, before, after))

        def table(ax, keep):  # per prompt: [n after, sum after, n before, sum before]
            rows = []
            for p in range(30):
                if not keep(p):
                    continue
                a = [r[ax] for r in after if r["prompt_id"] == f"p{p}"]
                b = [r[ax] for r in before if r["prompt_id"] == f"p{p}"]
                rows.append([len(a), sum(a), len(b), sum(b)])
            return np.array(rows)
        arrays["others_harmless"].append(table("harmless", lambda p: p % 3 != 0))
        arrays["overall_helpful"].append(table("helpful", lambda p: True))
        arrays["tuned_helpful"].append(table("helpful", lambda p: p % 3 == 0))
    return seeds, arrays


def _delta(t):
    return t[1] / t[0] - t[3] / t[2]


def test_alignment_tax_intervals_against_a_hand_bootstrap():
    seeds, arrays = _tax_seeds([0.0, 0.0, 0.0])
    iv = tax_intervals(tax_clusters(seeds, "factual"))
    assert set(iv) == {"overall", "tuned", "others"}
    tax = iv["others"]["harmless"]
    assert_matches(tax, *hand_bootstrap(arrays["others_harmless"], _delta))
    assert tax["value"] == pytest.approx(-0.2, abs=0.02)
    assert tax["within_noise"] is False and tax["ci95"][1] < 0
    assert tax["n"]["seeds"] == 3 and tax["n"]["prompts"] == 3 * 20
    assert tax["n"]["samples"] == 3 * 20 * 2
    assert iv["tuned"]["helpful"]["n"]["prompts"] == 3 * 10
    assert_matches(iv["tuned"]["helpful"], *hand_bootstrap(arrays["tuned_helpful"], _delta))
    # the tuned family lost nothing: its harmless change is noise around zero
    assert iv["tuned"]["harmless"]["within_noise"] is True
    assert iv["overall"]["utility"]["n"]["prompts"] == 90


def test_seeds_that_disagree_put_the_alignment_tax_within_noise():
    # helpful moves +0.15, -0.15, 0 by seed: each seed alone is far from zero, the pool is not
    seeds, arrays = _tax_seeds([0.15, -0.15, 0.0])
    iv = tax_intervals(tax_clusters(seeds, "factual"))["overall"]["helpful"]
    point, ci, se = hand_bootstrap(arrays["overall_helpful"], _delta)
    assert_matches(iv, point, ci, se)
    assert iv["within_noise"] is True and ci[0] < 0 < ci[1]
    one_seed = tax_intervals(tax_clusters(seeds[:1], "factual"))["overall"]["helpful"]
    assert one_seed["within_noise"] is False and one_seed["n"]["seeds"] == 1


def test_alignment_tax_of_two_seeds_in_the_report(tmp_path):
    run = tmp_path / "run"
    make_run(run, until="finetune")
    alone = build_report(run)["alignment_tax"]
    member = run / "seeds" / "seed=2"
    make_run(member, until="finetune")
    path = member / "finetune" / "metrics.json"
    data = json.loads(path.read_text())
    data["after"]["metrics"]["gold/utility"] = 0.7  # the first seed's fake says 0.5
    path.write_text(json.dumps(data))
    (run / "seeds" / "seeds.json").write_text(json.dumps({"dirs": [".", "seeds/seed=2"]}))
    report = build_report(run)
    import jsonschema
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    tax = report["alignment_tax"]
    assert alone["seeds"] == 1 and tax["seeds"] == 2
    assert tax["overall"]["gold/utility"]["after"] == pytest.approx(0.6)  # the seeds' mean
    for scope in ("overall", "tuned", "others"):
        a, b = alone["intervals"][scope]["helpful"], tax["intervals"][scope]["helpful"]
        assert b["n"]["seeds"] == 2 and b["n"]["prompts"] == 2 * a["n"]["prompts"]
        assert b["value"] == pytest.approx(a["value"])  # the same samples twice
    # the fake tuned model answers its one factual prompt truly: helpful rises there
    assert tax["intervals"]["tuned"]["helpful"]["value"] > 0
    md, page = render_markdown(report), render_html(report)
    for text in (md, page):
        assert "gold Δ after − before (2 seeds)" in text
        assert "within noise (n: 2 seeds × 20 prompts)" in text


# --- process supervision ---------------------------------------------------------------------

def _process_rows(rng, prm_gain: float, n_questions: int = 25) -> list[dict]:
    """Per held-out question, sums of 3 best-of-4 draws and of 3 best-of-1 draws per selector
    (each pick: 3 steps, a final answer); the PRM's picks are right `prm_gain` more often."""
    rows = []
    for q in range(n_questions):
        row = {"prompt_id": f"q{q}", "draws": 3.0}
        base = rng.uniform(0.3, 0.7)
        for sel, p in (("orm", base), ("prm", min(base + prm_gain, 1.0))):
            for n in (1, 4):
                final = rng.random(3) < (base if n == 1 else p)
                steps = rng.random(9) < (base if n == 1 else p)
                row |= {f"{sel}/n{n}/final": float(final.sum()),
                        f"{sel}/n{n}/steps_right": float(steps.sum()),
                        f"{sel}/n{n}/steps": 9.0,
                        f"{sel}/n{n}/rawr": float((final & ~steps[:3]).sum())}
        rows.append(row)
    return rows


def _write_seeds(root, rows_by_seed):
    dirs = []
    for i, rows in enumerate(rows_by_seed):
        d = root / f"seed{i}"
        (d / "process").mkdir(parents=True)
        write_jsonl(d / "process" / process_bon.PER_PROMPT_FILE, rows)
        dirs.append(d)
    return dirs


def _columns(rows_by_seed, cols):
    return [np.array([[r[c] for c in cols] for r in rows]) for rows in rows_by_seed]


def test_process_intervals_against_a_hand_bootstrap(tmp_path):
    rng = np.random.default_rng(1)
    rows = [_process_rows(rng, 0.25) for _ in range(3)]
    iv = process_intervals(process_clusters(_write_seeds(tmp_path, rows)), 4)
    assert iv["best_of"] == 4
    cols = ["prm/n4/final", "draws", "orm/n4/final"]
    point, ci, se = hand_bootstrap(_columns(rows, cols), lambda t: (t[0] - t[2]) / t[1])
    gain = iv["accuracy/final"]["prm_minus_orm"]
    assert_matches(gain, point, ci, se)
    assert gain["within_noise"] is False and gain["value"] > 0.1
    assert gain["n"] == {"seeds": 3, "clusters": 75, "clusters_per_seed": [25, 25],
                         "prompts": 75, "samples": 225}
    steps = ["prm/n4/steps_right", "prm/n4/steps", "orm/n4/steps_right", "orm/n4/steps"]
    assert_matches(iv["accuracy/steps"]["prm_minus_orm"],
                   *hand_bootstrap(_columns(rows, steps), lambda t: t[0] / t[1] - t[2] / t[3]))
    orm = iv["accuracy/final"]["orm"]
    assert "within_noise" not in orm  # a level, not a change
    assert orm["value"] == pytest.approx(sum(r["orm/n4/final"] for s in rows for r in s) / 225)


def test_no_process_gain_reads_within_noise(tmp_path):
    rng = np.random.default_rng(2)
    rows = [_process_rows(rng, 0.0) for _ in range(3)]
    iv = process_intervals(process_clusters(_write_seeds(tmp_path, rows)), 4)
    gain = iv["accuracy/final"]["prm_minus_orm"]
    point, ci, se = hand_bootstrap(_columns(rows, ["prm/n4/final", "draws", "orm/n4/final"]),
                                   lambda t: (t[0] - t[2]) / t[1])
    assert_matches(gain, point, ci, se)
    assert ci[0] < 0 < ci[1] and gain["within_noise"] is True


def test_a_process_run_without_per_question_sums_still_reads(tmp_path):
    """A run from before process/bon_prompts.jsonl: bon.json as before, intervals null with a
    note; with the file, the intervals of its one seed."""
    bon = {"bon": {f"{s}/n{n}": {"accuracy/final": 0.5, "accuracy/steps": 0.6,
                                 "rate/right_answer_wrong_reasoning": 0.1, "n": 30}
                   for s in ("orm", "prm") for n in (1, 4)},
           "heldout": {}, "prm_score": "min over steps of sigmoid(logit)"}
    (tmp_path / "process").mkdir()
    (tmp_path / "process" / "bon.json").write_text(json.dumps(bon))
    records = {"process": {"counts": {"responses": 100}}}
    old = build_oversight(tmp_path, records)
    assert old["process"]["bon"] == bon["bon"] and old["process"]["intervals"] is None
    assert "bon_prompts.jsonl" in old["notes"]["process.intervals"]
    write_jsonl(tmp_path / "process" / process_bon.PER_PROMPT_FILE,
                _process_rows(np.random.default_rng(3), 0.2, n_questions=10))
    new = build_oversight(tmp_path, records)
    assert new["process"]["intervals"]["best_of"] == 4 and "process.intervals" not in new["notes"]
    assert new["process"]["intervals"]["accuracy/final"]["prm"]["n"]["seeds"] == 1


def test_the_stage_and_the_audit_name_the_same_file():
    assert process_stage.PER_PROMPT_FILE == process_bon.PER_PROMPT_FILE


# --- oversight: the rise of confident-but-wrong answers, pooled over seeds ---------------------

def _rise_clusters(per_seed: list[tuple[list[float], list[float]]]):
    """Clusters as oversight.rise_clusters builds them: one row per (seed, prompt), its rise in
    CLASS/rise and 1 in CLASS/prompts. `per_seed[s]`: (verifiable rises, unverifiable rises)."""
    from rlxf.audit.intervals import Clusters
    clusters = Clusters()
    for s, (ver, unver) in enumerate(per_seed):
        for c, xs in (("verifiable", ver), ("unverifiable", unver)):
            for x in xs:
                clusters.add(s, {f"{c}/rise": x, f"{c}/prompts": 1.0})
    return clusters


def test_oversight_rise_pooled_over_seeds_against_a_hand_bootstrap():
    from rlxf.audit.oversight import rise_intervals
    rng = np.random.default_rng(3)
    # verifiable prompts rise by ~0.05, unverifiable by ~0.15: a gap beyond noise
    per_seed = [(list(rng.normal(0.05, 0.05, 6 + s)), list(rng.normal(0.15, 0.05, 20 + s)))
                for s in range(3)]
    iv = rise_intervals(_rise_clusters(per_seed))
    # columns per prompt row: [ver rise, ver prompts, unver rise, unver prompts]
    arrays = [np.array([[x, 1, 0, 0] for x in ver] + [[0, 0, x, 1] for x in unver])
              for ver, unver in per_seed]
    assert_matches(iv["gap"], *hand_bootstrap(arrays, lambda t: t[2] / t[3] - t[0] / t[1]))
    assert_matches(iv["verifiable"], *hand_bootstrap(arrays, lambda t: t[0] / t[1]))
    ver = [x for v, _ in per_seed for x in v]
    assert iv["verifiable"]["value"] == pytest.approx(sum(ver) / len(ver))  # prompt-weighted
    assert iv["gap"]["within_noise"] is False and iv["gap"]["value"] > 0.05
    assert iv["gap"]["n"]["seeds"] == 3 and iv["gap"]["n"]["prompts"] == 21 + 63
    assert iv["unverifiable"]["n"]["prompts"] == 63
    # seeds whose gaps point opposite ways pool to a gap within noise
    flip = [(list(rng.normal(0.15 if s == 1 else 0.0, 0.02, 8)),
             list(rng.normal(0.0 if s == 1 else 0.15, 0.02, 8))) for s in range(3)]
    assert rise_intervals(_rise_clusters(flip))["gap"]["within_noise"] is True
    # one class without prompts: no interval
    assert rise_intervals(_rise_clusters([([], [0.1, 0.2])])) == {}
