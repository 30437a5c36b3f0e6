"""The curator's tools through the API on SQLite and PostgreSQL: an item's judgements side by
side, agreement on subsets (raw, alpha, AC1), the review queue (disagreement, failed gold),
decisions that appear in the export naming who decided, and partial / tied rankings."""

import pytest
from conftest import annotate_records

from rlxf.feedback.agreement import gwet_ac1, summary
from rlxf.feedback.quality import final_labels, items_of, krippendorff_alpha, raw_agreement
from rlxf.feedback.record import FeedbackRecord


def judge_all(site, person, project_id, answer):
    for a in site.next(person, project_id, n=50):
        assert site.label(person, a["id"], **answer(a)).status_code == 201


def decide(site, project_id, **body):
    return site.call("POST", f"/api/admin/projects/{project_id}/decisions", site.admin,
                     json=body)


def test_review_queue_decisions_reach_the_export_with_who_decided(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(8), overlap=3, gold_count=0)
    pid = p["id"]
    x, y, z = (site.annotator(n) for n in ("x", "y", "z"))
    disputed = {"c000003", "c000005"}
    judge_all(site, x, pid, lambda a: {"choice": 0})
    judge_all(site, y, pid, lambda a: {"choice": 1 if a["item_id"] in disputed else 0})
    judge_all(site, z, pid, lambda a: {"tie": True} if a["item_id"] == "c000005" else
              {"choice": 0})
    r = site.call("GET", f"/api/admin/projects/{pid}/review", site.admin).json()
    got = {i["item_id"]: i for i in r["items"]}
    assert set(got) == disputed and r["open"] == 2 and r["decided"] == 0
    assert got["c000003"]["reasons"] == ["disagreement"]
    assert got["c000003"]["agreement"] == pytest.approx(1 / 3)  # (a, a, b): 1 of 3 pairs
    assert got["c000005"]["labels"] == {"a": 1, "b": 1, "tie": 1}
    assert got["c000005"]["agreement"] == 0.0
    assert [i["item_id"] for i in r["items"]][0] == "c000005"  # lowest agreement first

    view = site.call("GET", f"/api/admin/projects/{pid}/item", site.admin,
                     params={"id": "c000003"}).json()
    assert [(j["annotator"], j["label"]) for j in view["judgements"]] == [
        (x["pid"], "a"), (y["pid"], "b"), (z["pid"], "a")]
    assert view["reasons"] == ["disagreement"] and view["decisions"] == []

    # accept y's label; set a tie on the other; refusals name what is wrong
    assert decide(site, pid, item_id="c000003", accept=y["pid"], note="B is right").status_code \
        == 201
    for bad, status in (({"item_id": "c000005"}, 422),
                        ({"item_id": "c000005", "accept": x["pid"], "choice": 1}, 422),
                        ({"item_id": "c000005", "choice": 7}, 422),
                        ({"item_id": "c000005", "choice": 0, "tie": True}, 422),
                        ({"item_id": "nope", "choice": 0}, 404),
                        ({"item_id": "c000005", "accept": "h-00000000"}, 404)):
        r = decide(site, pid, **bad)
        assert r.status_code == status and r.json()["error"], (bad, r.text)
    annotator_try = site.call("POST", f"/api/admin/projects/{pid}/decisions", x,
                              json={"item_id": "c000005", "choice": 0})
    assert annotator_try.status_code == 403
    view = decide(site, pid, item_id="c000005", tie=True).json()
    assert view["decisions"][0]["method"] == "set" and view["decisions"][0]["label"] == "tie"
    # a second decision replaces the first in the export; history stays in the item view
    view = decide(site, pid, item_id="c000005", choice=1, strength=2, note="on reflection").json()
    assert [d["label"] for d in view["decisions"]] == ["b", "tie"]
    r = site.call("GET", f"/api/admin/projects/{pid}/review?status=decided", site.admin).json()
    assert {i["item_id"] for i in r["items"]} == disputed and r["open"] == 0

    records = [FeedbackRecord.model_validate(r) for r in site.export(pid)]
    finals = {r.item_id: r for r in records if r.adjudication}
    assert set(finals) == disputed and len(records) == 8 * 3 + 2
    accepted, set_ = finals["c000003"], finals["c000005"]
    admin_pid = site.admin["pid"]
    assert accepted.annotator.id == admin_pid and accepted.choice == 1
    assert accepted.adjudication.model_dump(exclude={"decided"}) == {
        "by": admin_pid, "method": "accepted", "accepted_from": y["pid"],
        "reason": "disagreement", "note": "B is right"}
    assert (set_.adjudication.method, set_.choice, set_.strength, set_.adjudication.note) == (
        "set", 1, 2.0, "on reflection")
    assert final_labels(records) == {"c000003": "b", "c000005": "b"}
    # the final labels are not votes: agreement is the annotators' own
    stats = site.call("GET", f"/api/admin/projects/{pid}/stats", site.admin).json()
    labels = list(items_of(records).values())
    assert stats["agreement"]["raw"] == pytest.approx(raw_agreement(labels))
    assert stats["agreement"]["gwet_ac1"] == pytest.approx(gwet_ac1(labels, ("a", "b", "tie")))


def test_failed_gold_and_agreement_on_chosen_annotators_and_items(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(10), overlap=2, gold_count=2, gold_rate=0.5)
    pid = p["id"]
    good, bad = site.annotator("good"), site.annotator("bad")
    judge_all(site, good, pid, lambda a: {"choice": 0})
    judge_all(site, bad, pid, lambda a: {"choice": 1})
    records = [FeedbackRecord.model_validate(r) for r in site.export(pid)]
    gold_items = {r.item_id for r in records if r.provenance["gold"]}
    assert gold_items
    r = site.call("GET", f"/api/admin/projects/{pid}/review", site.admin).json()
    reasons = {i["item_id"]: i["reasons"] for i in r["items"]}
    for item in gold_items:
        assert "failed gold" in reasons[item]
        assert next(i for i in r["items"] if i["item_id"] == item)["gold_answer"] == "a"

    def agreement(**params):
        r = site.call("GET", f"/api/admin/projects/{pid}/agreement", site.admin, params=params)
        assert r.status_code == 200, r.text
        return r.json()
    everyone = agreement()
    labels = items_of(records)
    want = summary(labels)
    for k in ("raw", "krippendorff_alpha", "gwet_ac1", "items", "judgements"):
        assert everyone[k] == pytest.approx(want[k]), k
    assert everyone["raw"] == pytest.approx(raw_agreement(list(labels.values())))
    assert everyone["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha(list(labels.values())))
    one = agreement(annotators=good["pid"])
    assert (one["chosen"]["annotators"], one["annotators"], one["raw"], one["judgements"]) == (
        [good["pid"]], 1, None, sum(r.annotator.id == good["pid"] for r in records))
    shared = sorted(i for i, js in labels.items() if len(js) == 2)[:3]
    some = agreement(items=",".join(shared))
    assert {x["item_id"] for x in some["per_item"]} == set(shared)
    assert some["raw"] == 0.0 and all(x["agreement"] == 0.0 for x in some["per_item"])
    r = site.call("GET", f"/api/admin/projects/{pid}/agreement", good)
    assert r.status_code == 403


def test_partial_and_tied_rankings_are_accepted_exported_and_reviewed(annotate_site):
    site = annotate_site
    rows = annotate_records(2, judges=("sim-a",))
    for r in rows:  # four responses to one prompt: two pairs with distinct texts
        r["prompt_id"], r["prompt"] = "p0", rows[0]["prompt"]
    rows[1]["responses"] = ["answer three", "answer four"]
    p = site.project(rows, task_type="ranking", overlap=2, gold_count=0)
    u, v = site.annotator(), site.annotator()
    (a,) = site.next(u, p["id"])
    assert len(a["responses"]) == 4
    for bad in ({"ranking": []}, {"ranking": [2, 2]}, {"ranking": [2, 0], "ties": [[2, 1]]},
                {"ranking": [2, 0, 1], "ties": [[2]]}, {"ties": [[0, 1]]}):
        r = site.label(u, a["id"], **bad)
        assert r.status_code == 422 and r.json()["error"], (bad, r.text)
    assert site.label(u, a["id"], ranking=[2, 0]).status_code == 201  # top 2 of 4
    (b,) = site.next(v, p["id"])
    r = site.label(v, b["id"], ranking=[2, 0, 1], ties=[[2, 0]])
    assert r.status_code == 201 and r.json()["judgement"]["ties"] == [[2, 0]]
    recs = {rec["annotator"]["id"]: FeedbackRecord.model_validate(rec)
            for rec in site.export(p["id"])}
    assert recs[u["pid"]].ranking == [2, 0] and recs[u["pid"]].ties is None
    assert recs[u["pid"]].ranking_levels() == [1, 2, 0, 2]
    assert recs[v["pid"]].ties == [[2, 0]] and recs[v["pid"]].ranking_levels() == [0, 1, 0, 2]
    review = site.call("GET", f"/api/admin/projects/{p['id']}/review", site.admin).json()
    (item,) = review["items"]
    assert item["labels"] == {"2>0": 1, "2=0>1": 1} and item["reasons"] == ["disagreement"]
    view = decide(site, p["id"], item_id=a["item_id"], ranking=[0, 2, 1, 3], ties=[[1, 3]])
    assert view.status_code == 201 and view.json()["decisions"][0]["label"] == "0>2>1=3"
    (final,) = [FeedbackRecord.model_validate(r) for r in site.export(p["id"])
                if r.get("adjudication")]
    assert final.ranking_levels() == [0, 2, 1, 2] and final.adjudication.method == "set"
    # agreement compares weak orders exactly; AC1's categories are the orders observed
    r = site.call("GET", f"/api/admin/projects/{p['id']}/agreement", site.admin).json()
    assert (r["raw"], r["items"], r["judgements"]) == (0.0, 1, 2)
    assert r["per_item"] == [{"item_id": a["item_id"], "judgements": 2, "agreement": 0.0,
                              "labels": {"2>0": 1, "2=0>1": 1}}]
    # p_a = 0, π = (1/2, 1/2), q = 2: p_e = 1/2, AC1 = -1
    assert r["gwet_ac1"] == pytest.approx(-1.0)
    # the page needs a signed-in session (tests/test_review_e2e.py renders it in Chromium)
    page = site.call("GET", f"/admin/projects/{p['id']}/review", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
