"""Who may work on a project, taking unlabelled work back (removal, disabling, idleness), and
the per-account rate limit of submissions -- on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

from conftest import annotate_records
from sqlalchemy import func, select

from rlxf.server.ratelimit import RateLimiter
from rlxf.store import Assignment, Item, Judgement


def counters_match(site) -> None:
    """Every item's counter equals the assignments that hold it (the queue's invariant)."""
    with site.store.read() as s:
        held = dict(s.execute(select(Assignment.item_id, func.count(Assignment.id))
                              .group_by(Assignment.item_id)).all())
        for item in s.scalars(select(Item)):
            assert item.n_assigned == held.get(item.id, 0), item.item_id


def test_members_only_projects_hand_work_to_members(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(4), overlap=1, gold_count=0, members_only=True)
    assert p["members_only"] is True
    member, outsider = site.annotator(), site.annotator()
    r = site.call("PUT", f"/api/admin/projects/{p['id']}/members/{member['pid']}", site.admin)
    assert r.status_code == 200 and r.json()["added"] is True
    again = site.call("PUT", f"/api/admin/projects/{p['id']}/members/{member['pid']}", site.admin)
    assert again.json()["added"] is False
    assert len(site.next(member, p["id"], n=2)) == 2
    r = site.call("POST", f"/api/projects/{p['id']}/next", outsider)
    assert r.status_code == 403 and "members only" in r.json()["error"]
    assert site.call("GET", f"/api/projects/{p['id']}", outsider).status_code == 403
    assert [x["id"] for x in site.call("GET", "/api/projects", outsider).json()] == []
    assert [x["id"] for x in site.call("GET", "/api/projects", member).json()] == [p["id"]]
    r = site.call("GET", f"/api/admin/projects/{p['id']}/members", site.admin)
    assert r.json()["members"] == [member["pid"]]
    # members-only off again: everyone may work
    site.call("PATCH", f"/api/admin/projects/{p['id']}", site.admin, json={"members_only": False})
    assert len(site.next(outsider, p["id"], n=5)) == 2
    # only admins manage members
    r = site.call("PUT", f"/api/admin/projects/{p['id']}/members/{outsider['pid']}", member)
    assert r.status_code == 403
    r = site.call("PUT", f"/api/admin/projects/{p['id']}/members/nobody", site.admin)
    assert r.status_code == 404


def test_removing_a_member_hands_their_unlabelled_work_to_others(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(4), overlap=1, gold_count=0, members_only=True)
    leaver, stayer = site.annotator(), site.annotator()
    for who in (leaver, stayer):
        site.call("PUT", f"/api/admin/projects/{p['id']}/members/{who['pid']}", site.admin)
    held = site.next(leaver, p["id"], n=4)
    assert len(held) == 4 and site.next(stayer, p["id"]) == []  # k = 1: all taken
    assert site.label(leaver, held[0]["id"], choice=1).status_code == 201
    r = site.call("DELETE", f"/api/admin/projects/{p['id']}/members/{leaver['pid']}", site.admin)
    assert r.status_code == 200 and r.json() == {"project": p["id"], "member": leaver["pid"],
                                                 "removed": True, "released": 3}
    counters_match(site)
    # the three unlabelled items go to the other member; the label given stays
    assert sorted(a["item_id"] for a in site.next(stayer, p["id"])) == sorted(
        a["item_id"] for a in held[1:])
    # the work is gone (404), or its id now names the other member's assignment (403)
    assert site.label(leaver, held[1]["id"]).status_code in (403, 404)
    assert [r["annotator"]["id"] for r in site.export(p["id"])] == [leaver["pid"]]


def test_disabling_an_account_releases_its_work_everywhere(annotate_site):
    site = annotate_site
    p1 = site.project(annotate_records(3), overlap=1, gold_count=0)
    p2 = site.project(annotate_records(2), overlap=1, gold_count=0)
    gone, other = site.annotator(), site.annotator()
    site.next(gone, p1["id"]), site.next(gone, p2["id"])
    r = site.call("PATCH", f"/api/admin/annotators/{gone['pid']}", site.admin,
                  json={"disabled": True})
    assert r.status_code == 200 and r.json()["released"] == 5
    counters_match(site)
    assert len(site.next(other, p1["id"])) == 3 and len(site.next(other, p2["id"])) == 2


def test_idle_annotators_work_is_released(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(6), overlap=1, gold_count=0)
    idle, busy, finished = site.annotator(), site.annotator(), site.annotator()
    idle_work = site.next(idle, p["id"], n=2)
    busy_work = site.next(busy, p["id"], n=2)
    done = site.next(finished, p["id"], n=1)
    assert site.label(finished, done[0]["id"]).status_code == 201
    # an hour passes for the idle one and the finished one; the busy one just got work
    # (shifted in Python: SQLite has no date arithmetic on its text timestamps)
    with site.store.write() as s:
        for row in s.scalars(select(Assignment).where(Assignment.id.in_(
                [a["id"] for a in idle_work + done]))):
            row.created -= timedelta(hours=1)
        for row in s.scalars(select(Judgement)):
            row.created -= timedelta(hours=1)
    stats = site.call("GET", f"/api/admin/projects/{p['id']}/stats", site.admin).json()
    last = {a["pid"]: a["last_label"] for a in stats["annotators"]}
    assert last[idle["pid"]] is None and last[busy["pid"]] is None  # the admin sees who stalled
    hours = (datetime.now(timezone.utc) - datetime.fromisoformat(last[finished["pid"]]))
    assert timedelta(minutes=59) < hours < timedelta(minutes=61)
    r = site.call("POST", f"/api/admin/projects/{p['id']}/release", site.admin,
                  json={"idle_minutes": 30})
    # the finished annotator holds nothing unlabelled: nothing to take back from them
    assert r.status_code == 200 and r.json()["annotators"] == [idle["pid"]]
    assert r.json()["released"] == 2
    counters_match(site)
    # the busy one's own two, the two released, and the one never handed out
    assert len(site.next(busy, p["id"], n=10)) == len(busy_work) + 2 + 1
    # one annotator's work, on demand (a member stays a member)
    r = site.call("POST", f"/api/admin/projects/{p['id']}/release", site.admin,
                  json={"pid": busy["pid"]})
    assert r.json()["released"] == 5 and r.json()["annotators"] == [busy["pid"]]
    counters_match(site)
    for bad in ({"idle_minutes": 0}, {"idle_minutes": "x"}, {}, {"idle_minutes": 5, "pid": 1},
                {"idle_minutes": 5, "pid": busy["pid"]}, {"pid": "no body"}):
        r = site.call("POST", f"/api/admin/projects/{p['id']}/release", site.admin, json=bad)
        assert r.status_code == 422 and r.json()["error"]


def test_submissions_over_the_rate_limit_get_429(annotate_site):
    site = annotate_site
    site.client.app.state.submit_limit = RateLimiter(rate=0.5, burst=3)
    p = site.project(annotate_records(6), overlap=1, gold_count=0)
    fast, other = site.annotator(), site.annotator()
    work = site.next(fast, p["id"], n=5)
    assert [site.label(fast, a["id"]).status_code for a in work[:3]] == [201, 201, 201]
    r = site.label(fast, work[3]["id"])
    assert r.status_code == 429 and "too many labels" in r.json()["error"]
    assert int(r.headers["retry-after"]) >= 1 and r.json()["retry_after_s"] > 0
    # another account has its own bucket; nothing over the limit was stored
    assert site.label(other, site.next(other, p["id"], n=1)[0]["id"]).status_code == 201
    assert len(site.export(p["id"])) == 4


def test_rate_limiter_refills_at_its_rate():
    now = [0.0]
    limit = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    limit.check(1), limit.check(1)
    try:
        limit.check(1)
        raise AssertionError("the third submission at once must be refused")
    except Exception as e:  # noqa: BLE001 - APIError expected
        assert e.status == 429 and e.extra["retry_after_s"] == 0.5
    now[0] = 0.5  # one token back after 1 / rate seconds
    limit.check(1)
    now[0] = 100.0  # never more than the burst
    limit.check(1), limit.check(1)
    try:
        limit.check(1)
        raise AssertionError("the burst is the cap")
    except Exception as e:  # noqa: BLE001
        assert e.status == 429
    RateLimiter(rate=0, burst=1).check(1)  # rate 0: no limit


def test_a_label_racing_a_release_is_never_lost(annotate_site):
    """Labels and 'take back' at the same moment, many times over: every label that was
    acknowledged (201) is exported; a release that won leaves a 404 and no label."""
    import threading

    from rlxf.server import membership, queue
    from rlxf.server.security import lookup_user
    site = annotate_site
    p = site.project(annotate_records(24), overlap=1, gold_count=0)
    ann = site.annotator()
    user = lookup_user(site.store, ann["Authorization"].split()[1], "bearer")
    acknowledged, refused, errors = [], [], []
    for round_ in range(12):
        (a,) = site.next(ann, p["id"], n=1)

        def label(a=a, round_=round_):
            try:
                body = queue.JudgementIn(key=f"race-key-{round_:04d}", choice=0)
                acknowledged.append(queue.submit(site.store, user, a["id"], body)[0]["id"])
            except Exception as e:  # noqa: BLE001 - sorted below
                (refused if getattr(e, "status", None) in (403, 404) else errors).append(e)

        def take_back():
            try:
                with site.store.write() as s:
                    membership.release(s, p["id"], [user.id])
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=label), threading.Thread(target=take_back)]
        if round_ % 2:  # either may start first
            threads.reverse()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(acknowledged) + len(refused) == 12
    assert sorted(r["id"] for r in site.export(p["id"])) == sorted(acknowledged)
    counters_match(site)
