"""Multi-step answers and process supervision: the steps render and parse exactly, the gold judge
scores each step and the final answer, the PRM score is the weakest step, and the `process`
stage trains both reward models and runs best-of-n at equal n."""

import json
import math
import random

import pytest

from rlxf.audit.process_bon import process_clusters, process_intervals
from rlxf.config import parse_config
from rlxf.pipeline import run_pipeline
from rlxf.stages import process
from rlxf.stages.context import StageContext
from rlxf.train.process import process_score
from rlxf.world import ParseError, build_kb
from rlxf.world.multihop import (StepResponse, judge_steps, multihop_prompts, parse_steps,
                                 render_steps, split_multihop, write_steps)

KB = build_kb(10, 10, seed=0)
PROMPTS = multihop_prompts(KB)


def test_steps_render_and_parse_exactly():
    rng = random.Random(0)
    for _ in range(300):
        r = write_steps(rng.choice(PROMPTS), KB, 0.5, 0.7, rng)
        assert parse_steps(render_steps(r), KB) == r
    text = "the glimmet is purple . the skarn is red . so the answer is no ."
    assert parse_steps(text, KB) == StepResponse((("glimmet", "purple"), ("skarn", "red")), False)
    for bad in ("the glimmet is purple .", "the glimmet is tall . so the answer is no .",
                "so the answer is maybe .", ""):
        with pytest.raises(ParseError):
            parse_steps(bad, KB)


def test_gold_judge_scores_each_step_and_the_answer():
    p = next(p for p in PROMPTS if KB.color[p.subject] != KB.color[p.claim])
    a, b = p.subject, p.claim
    wrong_a = next(c for c in ("red", "blue") if c != KB.color[a])
    right = StepResponse(((a, KB.color[a]), (b, KB.color[b])), False)
    g = judge_steps(p, right, KB)
    assert g.steps == (True, True) and g.final and not g.right_answer_wrong_reasoning
    # Wrong first step, yet "no" is still right: right answer, wrong reasoning.
    lucky = StepResponse(((a, wrong_a), (b, KB.color[b])), False)
    g = judge_steps(p, lucky, KB)
    assert g.steps == (False, True) and g.final and g.right_answer_wrong_reasoning
    # Right steps, wrong conclusion.
    g = judge_steps(p, StepResponse(right.steps, True), KB)
    assert g.reasoning_right and not g.final and not g.right_answer_wrong_reasoning
    # A step about a creature the question did not ask about is wrong.
    other = next(c for c in KB.creatures if c not in (a, b))
    g = judge_steps(p, StepResponse(((other, KB.color[other]), (b, KB.color[b])), False), KB)
    assert g.steps == (False, True)
    assert judge_steps(p, None, KB).final is False


def test_prm_score_is_the_weakest_step():
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert process_score([2.0, -1.0, 3.0]) == pytest.approx(sig(-1.0), abs=1e-12)
    assert process_score([0.0]) == 0.5


def test_split_is_stable_and_disjoint():
    train, held = split_multihop(PROMPTS, 0, 0.3)
    assert len(train) + len(held) == len(PROMPTS) == 45 and held
    assert not {p.id for p in train} & {p.id for p in held}
    assert split_multihop(PROMPTS, 0, 0.3) == (train, held)


def test_process_stage_trains_both_models_and_compares_at_equal_n(tmp_path):
    cfg = parse_config({"seed": 0, "world": {"n_countries": 4, "n_creatures": 6},
                        "process": {"enabled": True, "steps": 20, "batch_size": 16,
                                    "n_responses": 100, "model": {"n_layer": 1, "n_embd": 16,
                                                                  "n_head": 2, "max_length": 32}, "bon_n": [1, 4], "bon_draws": 3,
                                    "checkpoint_every": 20}})
    run = run_pipeline(cfg, "", tmp_path / "run", lambda *a: (lambda *b: None), lambda m: None,
                       until="world")
    out, ckpt = run.begin("process", "test")
    result = process.run(StageContext(run=run, config=cfg, out=out, ckpt=ckpt,
                                      progress=lambda *a: (lambda *b: None)))
    bon = json.loads((out / "bon.json").read_text())["bon"]
    assert set(bon) == {"orm/n1", "prm/n1", "orm/n4", "prm/n4"}
    # n = 1 is the first candidate whoever scores it: both selectors must agree exactly.
    assert bon["orm/n1"] == bon["prm/n1"]
    for k, r in bon.items():
        assert 0 <= r["rate/right_answer_wrong_reasoning"] <= r["accuracy/final"] <= 1
    assert (out / "orm" / "config.json").exists() and (out / "prm" / "config.json").exists()
    assert result["counts"]["step_labels"] == 3 * 100
    assert "prm/n4/rate/right_answer_wrong_reasoning" in result["metrics"]
    # per held-out question, the sums the audit pools over seeds: their ratios are bon.json's
    rows = [json.loads(line) for line in
            (out / process.PER_PROMPT_FILE).read_text().splitlines()]
    assert len(rows) == result["counts"]["prompts/heldout"]
    assert sum(r["draws"] for r in rows) == result["counts"]["bon_draws"] == 3 * len(rows)

    def total(col):
        return sum(r[col] for r in rows)
    for key, r in bon.items():
        assert total(f"{key}/final") / total("draws") == pytest.approx(r["accuracy/final"])
        assert total(f"{key}/steps_right") / total(f"{key}/steps") == pytest.approx(
            r["accuracy/steps"])
        assert total(f"{key}/rawr") / total("draws") == pytest.approx(
            r["rate/right_answer_wrong_reasoning"])
    assert out.name == "process"  # the stage's partial dir: out.parent reads as a run dir
    pooled = process_intervals(process_clusters([out.parent]), 4)["accuracy/final"]
    assert pooled["prm_minus_orm"]["value"] == pytest.approx(
        bon["prm/n4"]["accuracy/final"] - bon["orm/n4"]["accuracy/final"])
    assert pooled["prm"]["n"]["prompts"] == len(rows) and pooled["prm"]["n"]["seeds"] == 1
