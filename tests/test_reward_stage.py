"""The reward stage's optional models end to end on the tiny config (through the real CLI):
Plackett-Luce on k-wise rankings from a feedback file, ensemble uncertainty, aspect heads and
group-conditioned heads. Each test reruns only feedback and reward on a copy of the session's
tiny run (tests/conftest.py), whose world, pretraining and SFT are skipped."""

import json
from pathlib import Path

import pytest
from tiny_runs import TINY, copy_run, rlxf

from reward_fixtures import gold_rankings

pytestmark = pytest.mark.filterwarnings("ignore")


def run_variant(tiny_run: Path, tmp_path: Path, feedback: str = "", reward: str = "",
                end: str = "") -> Path:
    """A copy of the tiny run, then feedback and reward under the tiny config plus these lines
    at the top of its [feedback] and [reward] sections, and `end` at its end."""
    config = tmp_path / "variant.toml"
    config.write_text(TINY.read_text().replace("[feedback]\n", f"[feedback]\n{feedback}\n")
                      .replace("[reward]\n", f"[reward]\n{reward}\n") + "\n" + end)
    out = copy_run(tiny_run, tmp_path / "run")
    rlxf("run", config, "--out", out, "--until", "reward")
    return out


def stage(run: Path, name: str) -> dict:
    return json.loads((run / name / "_stage.json").read_text())


def test_rankings_from_a_feedback_file_train_a_plackett_luce_reward_model(tiny_run, tmp_path):
    from rlxf.audit.report import build_report

    rows = gold_rankings(tiny_run, 300, k=3)
    critique = {**rows[0], "id": "c0", "item_id": rows[0]["item_id"], "type": "critique",
                "responses": rows[0]["responses"][:1], "critique": "too short"}
    del critique["ranking"]
    records = tmp_path / "rankings.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in [critique, *rows]))
    out = run_variant(tiny_run, tmp_path, f'source = "human"\nrecords = "{records}"')
    rec = stage(out, "reward")
    assert rec["counts"]["rankings/train"] > 200 and rec["counts"]["pairs/train"] == 0
    # held-out pairs come from held-out rankings: 3 pairs each
    assert rec["counts"]["pairs/heldout"] == 3 * (300 - rec["counts"]["rankings/train"])
    assert rec["metrics"]["accuracy/gold"] > 0.65  # chance is 0.5; the rankings are gold
    # the feedback stage keeps the critique and records what the file held
    facts = stage(out, "feedback")["metrics"]["records"]
    assert facts["types"]["ranking"] == 300 and facts["types"]["critique"] == 1
    assert facts["judged_by"]["human"] == 301 and facts["responses_from"] == {"unknown": 301}
    assert sum(1 for _ in (out / "feedback" / "feedback.jsonl").open()) == 301
    items = {d["item"]: d for d in build_report(out)["disclosure"]}
    loss = items["loss function and disagreement modelling"]["value"]
    assert loss.startswith(f"Plackett–Luce loss on a scalar head over the SFT model: "
                           f"{rec['counts']['rankings/train']} annotator rankings")
    assert items["feedback types"]["value"].startswith(
        "300 rankings of 3 responses each and 1 free-text critique; no pairwise preferences")
    assert items["example selection"]["status"] == "not disclosed"


def test_ensemble_aspects_and_groups_in_one_tiny_run(tiny_run, tmp_path):
    import jsonschema

    from rlxf.audit.report import SCHEMA_PATH
    from rlxf.models.reward_heads import load_aspect_model, load_group_model

    cautious = ('[[feedback.annotators]]\nname = "cautious"\ncount = 3\n'
                'weights = { helpful = 0.1, harmless = 0.8, honest = 0.1 }\n')
    out = run_variant(tiny_run, tmp_path, "aspect_ratings = true",
                      "ensemble = 2\naspects = true\ngroup_conditioned = true\nbest_of_n = 3\n"
                      "best_of_n_prompts = 6", end=cautious)
    fb = stage(out, "feedback")
    assert fb["counts"]["ratings"] == 2 * 3 * fb["counts"]["comparisons"]  # 2 responses x overlap
    m = stage(out, "reward")["metrics"]
    assert all(m[f"uncertainty/{k}"] > 0 for k in ("train", "heldout", "offdist"))
    for a in ("helpful", "harmless", "honest"):
        assert m["aspects"][a]["pairs/train"] > 0
    assert m["pluralistic"]["groups"] == ["cautious", "crowd"]
    rows = m["pluralistic"]["best_of_n"]["rows"]
    assert set(rows) == {"cautious", "crowd", "average", "worst_off", "unconditioned"}
    assert all(r["min"] == min(r["gold/utility"].values()) for r in rows.values())
    # the interfaces later stages use
    aspect_model, group_model = load_aspect_model(out / "reward"), load_group_model(out / "reward")
    assert set(aspect_model.score([[1, 4]], [[2]], 0)) == {"helpful", "harmless", "honest"}
    assert len(group_model.score([[1, 4]], [[2]], 0, group="cautious")) == 1
    rlxf("audit", out)
    report = json.loads((out / "report" / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    assert report["reward_model"]["pluralistic"]["groups"] == ["cautious", "crowd"]
    assert "worst_off" in (out / "report" / "report.md").read_text()
