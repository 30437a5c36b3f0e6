"""The annotation API against real databases (SQLite and a throwaway PostgreSQL server):
the admin and annotator workflows, exactly-once submission, access control, and hostile
input that must get a 4xx with a message -- never a 500."""

import json
import threading
import uuid

import pytest
from conftest import annotate_jsonl, annotate_records
from sqlalchemy import func, select

from rlxf.feedback.quality import items_of, krippendorff_alpha, raw_agreement
from rlxf.feedback.record import FeedbackRecord
from rlxf.server import queue
from rlxf.server.security import lookup_user
from rlxf.store import Item, Judgement


def label_all(site, person, project_id, answer=None):
    """Label every item the app hands this person; returns how many."""
    n = 0
    while True:
        batch = site.next(person, project_id, n=7)
        if not batch:
            return n
        for a in batch:
            r = site.label(person, a["id"], **(answer(a) if answer else {"choice": 0}))
            assert r.status_code == 201, r.text
            n += 1


def test_two_annotators_overlap_agreement_and_export(annotate_site):
    site = annotate_site
    rows = annotate_records(6, split_every=3)
    p = site.project(rows, overlap=2, gold_count=0)
    assert (p["n_items"], p["n_gold"], p["task_type"]) == (6, 0, "pairwise")
    ann1, ann2 = site.annotator("alice"), site.annotator("bob", group="g2")
    # ann2 disagrees with ann1 on item c000000 only
    assert label_all(site, ann1, p["id"]) == 6
    assert label_all(site, ann2, p["id"],
                     lambda a: {"choice": 1 if a["item_id"] == "c000000" else 0}) == 6
    assert site.next(ann1, p["id"]) == []  # every item has its k = 2 judgements

    records = [FeedbackRecord.model_validate(r) for r in site.export(p["id"])]
    assert len(records) == 12 and len({r.id for r in records}) == 12
    assert {r.annotator.id for r in records} == {ann1["pid"], ann2["pid"]}
    assert all(r.source == "human" and r.type == "pairwise" for r in records)
    assert {r.annotator.group for r in records if r.annotator.id == ann2["pid"]} == {"g2"}
    text = json.dumps([r.to_json() for r in records])
    assert "alice" not in text and "bob" not in text  # admin notes never leave the database

    stats = site.call("GET", f"/api/admin/projects/{p['id']}/stats", site.admin).json()
    labels = list(items_of(records).values())
    assert stats["agreement"]["raw"] == pytest.approx(raw_agreement(labels)) == 5 / 6
    assert stats["agreement"]["krippendorff_alpha"] == pytest.approx(krippendorff_alpha(labels))
    assert stats["progress"]["judgements_regular"] == stats["progress"]["target"] == 12
    assert stats["progress"]["items_complete"] == 6
    by_pid = {a["pid"]: a for a in stats["annotators"]}
    assert by_pid[ann1["pid"]]["agreement/with_others"] == pytest.approx(5 / 6)
    assert by_pid[ann1["pid"]]["note"] == "alice"


def test_a_retried_submit_is_stored_exactly_once(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(3), overlap=1, gold_count=0)
    ann = site.annotator()
    a, b = site.next(ann, p["id"], n=2)
    first = site.label(ann, a["id"], key="retry-key-1", choice=1, strength=3)
    again = site.label(ann, a["id"], key="retry-key-1", choice=1, strength=3)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]
    # the same key on another assignment is a client bug: refused, nothing stored
    assert site.label(ann, b["id"], key="retry-key-1").status_code == 409
    # a second label with a new key must be a deliberate change (PUT), or an undo (DELETE)
    r = site.label(ann, a["id"], key="retry-key-2", choice=0)
    assert r.status_code == 409 and "PUT" in r.json()["error"]
    r = site.call("PUT", f"/api/assignments/{a['id']}/judgement", ann,
                  json={"key": "retry-key-3", "tie": True})
    assert r.status_code == 200 and r.json()["judgement"]["tie"] is True
    assert site.call("DELETE", f"/api/assignments/{a['id']}/judgement", ann).status_code == 200
    assert site.call("DELETE", f"/api/assignments/{a['id']}/judgement", ann).status_code == 404
    pending = site.next(ann, p["id"], n=5)
    assert pending[0]["id"] == a["id"]  # the undone item comes back first
    assert site.label(ann, a["id"], key="retry-key-4", choice=0).status_code == 201
    exported = site.export(p["id"])
    assert len(exported) == 1 and exported[0]["provenance"]["submission"] == "retry-key-4"


def test_concurrent_retries_of_one_key_store_one_row(annotate_site):
    """Eight threads submit the same key at once (a client retrying while the first request
    is still in flight): one row, and every thread gets the same answer."""
    site = annotate_site
    p = site.project(annotate_records(2), overlap=1, gold_count=0)
    ann = site.annotator()
    (a,) = site.next(ann, p["id"], n=1)
    user = lookup_user(site.store, ann["Authorization"].split()[1], "bearer")
    body = queue.JudgementIn(key="same-key-0001", choice=1, strength=2)
    answers, errors = [], []

    def go():
        try:
            answers.append(queue.submit(site.store, user, a["id"], body)[0]["id"])
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(answers)) == 1 and len(answers) == 8
    with site.store.read() as s:
        assert s.scalar(select(func.count(Judgement.id))) == 1


def test_concurrent_queue_fills_keep_overlap_exact(annotate_site):
    """Three annotators, two of them from two tabs each, fill their queues at once: no item
    gets more than k assignments and every counter matches the assignments it counts."""
    from rlxf.store import Assignment
    site = annotate_site
    p = site.project(annotate_records(12), overlap=2, gold_count=0)
    people = [lookup_user(site.store, site.annotator()["Authorization"].split()[1], "bearer")
              for _ in range(3)]
    errors = []

    def go(user):
        try:
            queue.next_assignments(site.store, user, p["id"], 8)
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=go, args=(u,)) for u in people + people[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with site.store.read() as s:
        counted = dict(s.execute(select(Assignment.item_id, func.count(Assignment.id))
                                 .group_by(Assignment.item_id)).all())
        for item in s.scalars(select(Item)):
            assert item.n_assigned == counted.get(item.id, 0) <= 2


def test_access_control(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(4), overlap=2, gold_count=0)
    ann1, ann2 = site.annotator(), site.annotator()
    (mine,) = site.next(ann1, p["id"], n=1)
    path = f"/api/assignments/{mine['id']}"
    # no token: 401 everywhere, with a message and a WWW-Authenticate header
    for method, url in [("GET", path), ("POST", path + "/judgement"), ("GET", "/api/me"),
                        ("POST", f"/api/projects/{p['id']}/next"), ("GET", "/api/admin/projects")]:
        r = site.call(method, url, json={"key": "k" * 10, "choice": 0})
        assert r.status_code == 401 and r.json()["error"], (method, url)
        assert r.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer not-a-real-token"}
    assert site.call("GET", "/api/me", bad).status_code == 401
    assert site.call("GET", "/api/me", headers={"Authorization": "Basic abc"}).status_code == 401
    # another annotator's assignment: 403 for read, write, change and undo
    assert site.call("GET", path, ann2).status_code == 403
    assert site.label(ann2, mine["id"]).status_code == 403
    assert site.call("PUT", path + "/judgement", ann2,
                     json={"key": "k" * 10, "choice": 0}).status_code == 403
    assert site.label(ann1, mine["id"]).status_code == 201
    assert site.call("DELETE", path + "/judgement", ann2).status_code == 403
    assert site.call("GET", path, ann1).json()["judgement"]["choice"] == 0
    # admin routes need the admin role
    for method, url in [("GET", "/api/admin/projects"),
                        ("GET", f"/api/admin/projects/{p['id']}/export"),
                        ("POST", "/api/admin/annotators")]:
        r = site.call(method, url, ann1, json={})
        assert r.status_code == 403 and "admin" in r.json()["error"], (method, url)
    site.client.cookies.set("rlxf_session", ann1["Authorization"].split()[1])
    r = site.client.get("/admin")
    assert r.status_code == 403 and "admin" in r.json()["error"]
    site.client.cookies.clear()


def test_cookie_sessions_need_the_csrf_token(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(2), overlap=1, gold_count=0)
    r = site.client.post("/api/admin/annotators", headers=site.h(site.admin), json={})
    login = site.client.post("/api/invites/accept",
                             json={"token": r.json()["invite_token"], "password": "pw-123456"})
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    csrf = login.json()["csrf"]
    a = site.client.post(f"/api/projects/{p['id']}/next?n=1", headers={"X-CSRF-Token": csrf})
    assert a.status_code == 200  # the cookie carries the session
    aid = a.json()["assignments"][0]["id"]
    body = {"key": "cookie-key-1", "choice": 0}
    r = site.client.post(f"/api/assignments/{aid}/judgement", json=body)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = site.client.post(f"/api/assignments/{aid}/judgement", json=body,
                         headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = site.client.post(f"/api/assignments/{aid}/judgement", json=body,
                         headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    assert site.client.get("/api/me").status_code == 200  # reads need no token
    # a login posted from another site is refused
    r = site.client.post("/api/login", json={"pid": login.json()["pid"], "password": "pw-123456"},
                         headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    site.client.cookies.clear()


def test_invites_are_one_time_and_passwords_work(annotate_site):
    site = annotate_site
    r = site.call("POST", "/api/admin/annotators", site.admin, json={"note": "carol"})
    token, pid = r.json()["invite_token"], r.json()["pid"]
    assert r.json()["invite_url"].endswith(f"/invite/{token}")
    assert site.client.get(f"/invite/{token}").text.count(pid) >= 1
    site.accept(token, password="correct horse")
    r = site.client.post("/api/invites/accept", json={"token": token})
    assert r.status_code == 404 and "already used" in r.json()["error"]
    r = site.client.post("/api/login", json={"pid": pid, "password": "wrong pass"})
    assert r.status_code == 401
    r = site.client.post("/api/login", json={"pid": pid, "password": "correct horse"})
    assert r.status_code == 200 and r.json()["pid"] == pid
    site.client.cookies.clear()
    # a new link revokes nothing but replaces the old link; disabling locks the person out
    assert site.call("PATCH", f"/api/admin/annotators/{pid}", site.admin,
                     json={"disabled": True}).status_code == 200
    r = site.client.post("/api/login", json={"pid": pid, "password": "correct horse"})
    assert r.status_code == 401


HOSTILE = [
    ("POST", "/api/assignments/{a}/judgement", b"{not json"),
    ("POST", "/api/assignments/{a}/judgement", b"[1, 2, 3]"),
    ("POST", "/api/assignments/{a}/judgement", b'"a string"'),
    ("POST", "/api/assignments/{a}/judgement", b"null"),
    ("POST", "/api/assignments/{a}/judgement", b""),
    ("POST", "/api/assignments/{a}/judgement", {"key": "short", "choice": 0}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "k\u0000" * 5, "choice": 0}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": 7}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": 0, "tie": True}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": 0, "strength": 9}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": "0"}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": 0, "extra": 1}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "ratings": {"x": 1}}),
    ("POST", "/api/assignments/{a}/judgement", {"key": "valid-key-1", "choice": 0,
                                                "duration_ms": 10 ** 30}),
    ("POST", "/api/assignments/99999999999999999999/judgement", {"key": "valid-key-1"}),
    ("POST", "/api/assignments/2147483647/judgement", {"key": "valid-key-1", "choice": 0}),
    ("POST", "/api/assignments/-1/judgement", {"key": "valid-key-1", "choice": 0}),
    ("GET", "/api/assignments/abc", None),
    ("GET", "/api/projects/1/assignments?limit=-5", None),
    ("GET", "/api/projects/1/assignments?before=1e99", None),
    ("POST", "/api/projects/1/next?n=100000", None),
    ("POST", "/api/projects/424242/next", None),
    ("PUT", "/api/me/demographics", {"data": {"age\u0000": "x"}}),
    ("PUT", "/api/me/demographics", {"data": {"age_band": "\u0000"}}),
    ("PUT", "/api/me/demographics", {"data": {f"k{i}": "v" for i in range(50)}}),
    ("POST", "/api/login", {"pid": "h-\u0000", "password": "x"}),
    ("POST", "/api/login", {"pid": "x" * 5000, "password": "x"}),
    ("POST", "/api/invites/accept", {"token": "\u0000" * 20}),
    ("POST", "/api/admin/projects", {"name": "x", "jsonl": "{bad json\n"}),
    ("POST", "/api/admin/projects", {"name": "x", "jsonl": '{"id": "1"}\n'}),
    ("POST", "/api/admin/projects", {"name": "x", "jsonl": ""}),
    ("POST", "/api/admin/projects", {"name": "x\u0000", "jsonl": "{}"}),
    ("POST", "/api/admin/projects", {"name": "x", "path": "../../etc/passwd"}),
    ("POST", "/api/admin/projects", {"name": "x", "path": "/etc/passwd"}),
    ("POST", "/api/admin/projects", {"name": "x", "path": "missing.jsonl"}),
    ("POST", "/api/admin/projects", {"name": "x", "jsonl": "{}", "path": "a"}),
    ("POST", "/api/admin/projects", {"name": "x", "overlap": 0, "jsonl": "{}"}),
    ("POST", "/api/admin/projects", {"name": "x", "task_type": "likert", "aspects": [],
                                     "jsonl": "{}"}),
    ("PATCH", "/api/admin/projects/1", {"status": "deleted"}),
    ("PATCH", "/api/admin/projects/1", {"guidelines": "\u0000"}),
    ("PATCH", "/api/admin/annotators/h-%00", {"disabled": True}),
    ("POST", "/api/admin/annotators/nobody/invite", None),
    ("POST", "/api/admin/annotators", {"role": "root"}),
    ("GET", "/api/admin/projects/0/export", None),
    ("GET", "/no/such/route", None),
    ("DELETE", "/api/projects/1", None),
]


def test_hostile_input_gets_a_4xx_with_a_message(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(3), overlap=1, gold_count=0)
    ann = site.annotator()
    (a,) = site.next(ann, p["id"], n=1)
    nul_rows = annotate_records(1)
    nul_rows[0]["prompt"] = "bad\u0000prompt"
    cases = HOSTILE + [("POST", "/api/admin/projects",
                        {"name": "x", "jsonl": annotate_jsonl(nul_rows)})]
    for method, url, body in cases:
        url = url.replace("{a}", str(a["id"]))
        who = site.admin if "/admin/" in url else ann
        kw = {"content": body, "headers": {"Content-Type": "application/json"}} \
            if isinstance(body, bytes) else {"json": body} if body is not None else {}
        r = site.call(method, url, who, **kw)
        assert 400 <= r.status_code < 500, (method, url, body, r.status_code, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"], (url, r.text)
    big = {"key": "valid-key-2", "choice": 0, "pad": "x" * (2 << 20)}
    r = site.call("POST", f"/api/assignments/{a['id']}/judgement", ann, json=big)
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert site.export(p["id"]) == []  # nothing hostile was stored


def test_gold_items_measure_accuracy_and_flag_careless_annotators(annotate_site):
    site = annotate_site
    # 30 items, all unanimous A in the source: 6 become gold (answer A), 20% of each queue
    p = site.project(annotate_records(30), overlap=3, gold_count=6, gold_rate=0.2)
    assert p["n_gold"] == 6 and p["source"]["gold_from"] == "unanimous source judgements"
    careful, careful2, careless = (site.annotator(n) for n in ("careful", "also", "careless"))
    for who, choice in ((careful, 0), (careful2, 0), (careless, 1)):
        for _ in range(2):
            for a in site.next(who, p["id"], n=10):
                assert site.label(who, a["id"], choice=choice, duration_ms=5000).status_code == 201
    stats = site.call("GET", f"/api/admin/projects/{p['id']}/stats", site.admin).json()
    by = {a["pid"]: a for a in stats["annotators"]}
    assert by[careful["pid"]]["gold/n"] == 4 and by[careful["pid"]]["gold/accuracy"] == 1.0
    assert by[careless["pid"]]["gold/accuracy"] == 0.0
    assert stats["flagged"] == [careless["pid"]]
    assert "gold accuracy 0%" in by[careless["pid"]]["flags"][0]
    assert "majority on only 0% of 20 items" in by[careless["pid"]]["flags"][1]
    exported = site.export(p["id"])
    assert sum(r["provenance"]["gold"] for r in exported) == 12


def test_run_directory_import_takes_gold_answers_from_the_world(annotate_site):
    from rlxf.config import WorldConfig
    from rlxf.world.grammar import Response, render
    from rlxf.world.kb import build_kb
    from rlxf.world.prompts import all_prompts

    kb = build_kb(4, 4, seed=0)
    factual = [p for p in all_prompts(kb) if p.family == "factual"][:8]
    run = site_dir = annotate_site.data_dir / "run"
    (run / "world").mkdir(parents=True)
    (run / "feedback").mkdir()
    (run / "world" / "world.json").write_text(json.dumps(
        {"kb": kb.to_json(), "weights": WorldConfig().weights.model_dump(), "trigger": "sudo"}))
    (run / "world" / "prompts.jsonl").write_text(
        "".join(json.dumps({"split": "train", "prompt": p.to_json()}) + "\n" for p in factual))
    rows = []
    for i, p in enumerate(factual):
        truth = kb.truth(p.relation, p.subject)
        wrong = next(v for v in kb.candidates(p.relation) if v != truth)
        right, bad = (render(Response(act="answer", relation=p.relation, subject=p.subject,
                                      value=v)) for v in (truth, wrong))
        responses = [right, bad] if i % 2 == 0 else [bad, right]
        rows.append({"id": f"c{i}/s", "item_id": f"c{i}", "type": "pairwise", "prompt": p.text,
                     "prompt_id": p.id, "responses": responses, "choice": 0,
                     "annotator": {"id": "s"}, "source": "simulated"})
    (run / "feedback" / "feedback.jsonl").write_text(annotate_jsonl(rows))
    r = annotate_site.call("POST", "/api/admin/projects", annotate_site.admin,
                           json={"name": "from run", "path": "run", "gold_count": 4})
    assert r.status_code == 201, r.text
    assert r.json()["source"]["gold_from"] == "world gold judge" and r.json()["n_gold"] == 4
    with annotate_site.store.read() as s:
        golds = {it.item_id: it.gold["choice"]
                 for it in s.scalars(select(Item).where(Item.is_gold))}
    # the world judge prefers the true answer: index 0 on even items, 1 on odd ones
    assert golds and all(c == int(item[1:]) % 2 for item, c in golds.items())
    assert site_dir.exists()


def test_annotators_see_and_erase_their_own_data(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(4), overlap=1, gold_count=0)
    ann, other = site.annotator("dora"), site.annotator()
    for a in site.next(ann, p["id"], n=2):
        site.label(ann, a["id"])
    assert site.call("PUT", "/api/me/demographics", ann,
                     json={"data": {"age_band": "25-34"}}).status_code == 200
    data = site.call("GET", "/api/me/data", ann).json()
    assert data["account"]["pid"] == ann["pid"] and len(data["judgements"]) == 2
    assert data["demographics"] == {"age_band": "25-34"}
    assert "age_band" not in json.dumps(site.export(p["id"]))  # demographics are never exported
    r = site.call("DELETE", "/api/me", ann)
    assert r.status_code == 200 and r.json()["judgements_deleted"] == 2
    assert site.export(p["id"]) == []
    assert site.call("GET", "/api/me", ann).status_code == 401
    # the erased person's items go back to the pool: the other annotator gets all four
    assert len(site.next(other, p["id"], n=10)) == 4


def test_likert_projects_export_ratings(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(2), task_type="likert", aspects=["helpful", "honest"],
                     scale=5, overlap=1, gold_count=0)
    assert p["n_items"] == 4  # each response of each pair is rated on its own
    assert "rate the response on each aspect" in p["guidelines"]
    ann = site.annotator()
    items = site.next(ann, p["id"], n=10)
    assert len(items) == 4 and all(len(a["responses"]) == 1 for a in items)
    assert site.label(ann, items[0]["id"], choice=0).status_code == 422
    assert site.label(ann, items[0]["id"], ratings={"helpful": 6, "honest": 1}).status_code == 422
    assert site.label(ann, items[0]["id"], ratings={"helpful": 5, "honest": 2}).status_code == 201
    (rec,) = site.export(p["id"])
    rec = FeedbackRecord.model_validate(rec)
    assert rec.type == "rating" and rec.ratings == {"helpful": 5.0, "honest": 2.0}


def test_pages_render_with_security_headers(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(2), overlap=1, gold_count=0)
    r = site.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert site.client.get("/annotate/1", follow_redirects=False).headers["location"].startswith(
        "/login?next=")
    token = site.admin["Authorization"].split()[1]
    site.client.cookies.set("rlxf_session", token)
    for url in ["/admin", f"/admin/projects/{p['id']}", f"/annotate/{p['id']}", "/projects", "/me"]:
        r = site.client.get(url)
        assert r.status_code == 200, url
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in site.client.get(f"/annotate/{p['id']}").text  # no inline script
    r = site.call("PATCH", f"/api/admin/projects/{p['id']}", site.admin,
                  json={"guidelines": "# Hi\n<script>alert(1)</script> **bold**"})
    page = site.client.get(f"/annotate/{p['id']}").text
    assert "&lt;script&gt;alert(1)" in page and "<strong>bold</strong>" in page
    assert site.client.get("/login?next=//evil.example").text.count('data-next="/"') == 1
    site.client.cookies.clear()
    assert uuid  # (used by the helpers)


def test_kill_9_mid_load_loses_and_duplicates_nothing(tmp_path):
    """The load script's fault mode, small: 10 annotators, 300 labels against a real server
    process on SQLite, kill -9 after 40%, restart; every acknowledged label is exported once."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "bench" / "annotate_load.py"
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(script), "--annotators", "10", "--labels", "300",
                           "--overlap", "2", "--batch", "10", "--fault", "--timeout", "120",
                           "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert summary["kills"] and summary["kills"][0]["at_label"] >= 120
    assert summary["labels_acknowledged"] == summary["exported"] == 300
    assert (summary["lost"], summary["duplicated"], summary["unacknowledged_in_export"],
            summary["mismatched"]) == (0, 0, 0, 0)


def test_a_served_app_checkpoints_in_the_background_and_freezes_its_heap(tmp_path):
    """`rlxf annotate serve` (serve=True) runs the WAL checkpointer while the app runs and
    freezes the start-up heap; in-process test clients (serve=False) do neither."""
    import gc

    from fastapi.testclient import TestClient

    from rlxf.server.app import create_app
    from rlxf.store import Store
    store = Store(tmp_path / "s.db")
    try:
        with TestClient(create_app(store, serve=True)) as client:
            assert client.get("/login").status_code == 200
            assert store._checkpointer is not None and store._checkpointer.is_alive()
            assert gc.get_freeze_count() > 0
        assert store._checkpointer is None
    finally:
        gc.unfreeze()
        store.dispose()
