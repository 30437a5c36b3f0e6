"""The task types beyond pairwise -- k-wise ranking, edit, critique, step-level labels (and
multi-aspect Likert in test_server_api.py) -- through the API on SQLite and PostgreSQL: what
each accepts, what it refuses (4xx with a message), and the canonical record it exports."""

import pytest
from conftest import annotate_records

from rlxf.feedback.record import FeedbackRecord
from rlxf.server.tasks import steps_of


def ranking_rows() -> list[dict]:
    """Two pairs for prompt p0 (three distinct responses) and one pair for p1."""
    rows = annotate_records(3, judges=("sim-a",))
    rows[1]["prompt_id"], rows[1]["prompt"] = "p0", rows[0]["prompt"]
    rows[1]["responses"][0] = rows[0]["responses"][1]  # shared with the first pair
    return rows


def test_ranking_gathers_a_prompts_responses_and_exports_rankings(annotate_site):
    site = annotate_site
    p = site.project(ranking_rows(), task_type="ranking", overlap=1, gold_count=5)
    assert (p["n_items"], p["n_gold"]) == (2, 0)  # gold answers exist only for pairwise
    assert "best first" in p["guidelines"]
    ann = site.annotator()
    items = {a["item_id"]: a for a in site.next(ann, p["id"])}
    first, second = items["c000000"], items["c000002"]
    assert len(first["responses"]) == 3 and len(second["responses"]) == 2
    for bad in ([0, 1, 1], [0, 1, 3], [2, 1, 0, 3], [-1, 0, 1], []):  # [0, 1]: a top 2
        r = site.label(ann, first["id"], ranking=bad)
        assert r.status_code == 422 and r.json()["error"], (bad, r.text)
    r = site.label(ann, first["id"], choice=0)
    assert r.status_code == 422 and "ranking" in r.json()["error"]
    assert site.label(ann, first["id"], ranking=[2, 0, 1]).status_code == 201
    assert site.label(ann, second["id"], ranking=[1, 0]).status_code == 201
    got = {r["item_id"]: FeedbackRecord.model_validate(r) for r in site.export(p["id"])}
    assert got["c000000"].type == "ranking" and got["c000000"].ranking == [2, 0, 1]
    assert got["c000000"].responses == first["responses"]
    assert got["c000000"].provenance["task"] == "ranking"
    assert got["c000002"].ranking == [1, 0]


def test_edit_and_critique_export_the_text(annotate_site):
    site = annotate_site
    rows = annotate_records(1)
    for task, field in (("edit", "edit"), ("critique", "critique")):
        p = site.project(rows, task_type=task, overlap=1, gold_count=0)
        assert p["n_items"] == 2  # each response of the pair on its own
        ann = site.annotator()
        a = site.next(ann, p["id"], n=1)[0]
        for bad in ({"text": ""}, {"text": "  \n "}, {"text": "x\u0000"}, {"text": "x" * 20_001},
                    {"choice": 0}, {"text": "ok", "ratings": {"helpful": 1}}, {}):
            r = site.label(ann, a["id"], **bad) if bad else site.label(ann, a["id"], text=None)
            assert 400 <= r.status_code < 500 and r.json()["error"], (task, bad, r.text)
        text = f"the capital of veloria is hulm . ({task})"
        first = site.label(ann, a["id"], key=f"{task}-key-0001", text=text)
        again = site.label(ann, a["id"], key=f"{task}-key-0001", text=text)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["judgement"]["text"] == text
        (rec,) = site.export(p["id"])
        rec = FeedbackRecord.model_validate(rec)
        assert rec.type == task and getattr(rec, field) == text
        assert rec.responses == a["responses"] and len(rec.responses) == 1


def test_steps_are_labelled_line_by_line_and_exported_as_ratings(annotate_site):
    site = annotate_site
    rows = annotate_records(1)
    rows[0]["responses"] = ["hulm is a city .\n\n  it is the capital of veloria .  \r\nso : hulm",
                            "one line only"]
    p = site.project(rows, task_type="steps", overlap=1, gold_count=0)
    ann = site.annotator()
    by_text = {a["responses"][0]: a for a in site.next(ann, p["id"])}
    multi = by_text[rows[0]["responses"][0]]
    assert steps_of(multi["responses"][0]) == ["hulm is a city .",
                                               "it is the capital of veloria .", "so : hulm"]
    for bad in ([True, False], [True] * 4, []):
        r = site.label(ann, multi["id"], steps=bad)
        assert r.status_code == 422 and "3 steps" in r.json()["error"]
    assert site.label(ann, multi["id"], steps=[True, False, True]).status_code == 201
    assert site.label(ann, by_text["one line only"]["id"], steps=[False]).status_code == 201
    recs = {r["responses"][0]: FeedbackRecord.model_validate(r) for r in site.export(p["id"])}
    rec = recs[rows[0]["responses"][0]]
    assert rec.type == "rating" and rec.ratings == {"step 1": 1.0, "step 2": 0.0, "step 3": 1.0}
    assert rec.provenance["task"] == "steps" and "1 correct" in rec.provenance["scale"]
    assert recs["one line only"].ratings == {"step 1": 0.0}


@pytest.mark.parametrize("task,answer", [("ranking", {"ranking": [1, 0]}),
                                         ("edit", {"text": "better"}),
                                         ("critique", {"text": "wrong capital"}),
                                         ("steps", {"steps": [True]})])
def test_new_task_types_keep_the_access_rules(annotate_site, task, answer):
    site = annotate_site
    p = site.project(annotate_records(2), task_type=task, overlap=1, gold_count=0)
    owner, other = site.annotator(), site.annotator()
    a = site.next(owner, p["id"], n=1)[0]
    path = f"/api/assignments/{a['id']}/judgement"
    r = site.call("POST", path, json={"key": "no-token-key-1", **answer})
    assert r.status_code == 401 and r.json()["error"]
    r = site.label(other, a["id"], **answer)
    assert r.status_code == 403 and "another annotator" in r.json()["error"]
    r = site.call("POST", path, owner, content=b'{"key": "broken-json-1", "text": ',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    big = {"key": "big-body-key-1", **answer, "pad": "x" * (2 << 20)}
    assert site.call("POST", path, owner, json=big).status_code == 413
    assert site.label(owner, a["id"], **answer).status_code == 201
    r = site.call("PUT", path, other, json={"key": "other-key-01", **answer})
    assert r.status_code == 403
    assert len(site.export(p["id"])) == 1
