"""The curator's review queue and tied / partial rankings in headless Chromium against the real
server (`rlxf annotate serve`, SQLite): annotators disagree (labels sent through the API), the
admin opens the review page, accepts one label and sets another with the form, and the export
carries both decisions with who decided; an annotator ranks the top two of four responses as
a tie with the keyboard (3, =, 1, Enter)."""

import json
import re
import uuid

import httpx
from conftest import annotate_records
from test_server_e2e import browser, expect, server, shoot  # noqa: F401 (fixtures)

from rlxf.feedback.record import FeedbackRecord


def admin_page(browser, base, link, errors):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(link)
    page.click("text=Accept invite and start")
    page.wait_for_url(base + "/admin")
    return page


def admin_call(page, method, path, body=None):
    """The signed-in admin's own session (cookie + CSRF token), as the pages call the API."""
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    r = page.request.fetch(page.url.split("/admin")[0] + path, method=method,
                           headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
                           data=json.dumps(body) if body is not None else None)
    assert r.ok, r.text()
    return r


def annotator(page, base):
    invite = admin_call(page, "POST", "/api/admin/annotators", {"note": "n"}).json()
    r = httpx.post(base + "/api/invites/accept", json={"token": invite["invite_token"]})
    return {"Authorization": "Bearer " + r.json()["token"]}, r.json()["pid"], invite["invite_url"]


def label_all(base, who, project_id, answer):
    batch = httpx.post(f"{base}/api/projects/{project_id}/next?n=20", headers=who).json()
    for a in batch["assignments"]:
        r = httpx.post(f"{base}/api/assignments/{a['id']}/judgement", headers=who,
                       json={"key": uuid.uuid4().hex, **answer(a["item_id"])})
        assert r.status_code == 201, r.text


def test_review_queue_accept_and_set_reach_the_export(server, browser, tmp_path):  # noqa: F811
    base, link = server
    errors = []
    admin = admin_page(browser, base, link, errors)
    rows = annotate_records(5)
    p = admin_call(admin, "POST", "/api/admin/projects",
                   {"name": "Curated", "jsonl": "".join(json.dumps(r) + "\n" for r in rows),
                    "overlap": 2, "gold_count": 0}).json()
    (one, _, _), (two, two_pid, _) = annotator(admin, base), annotator(admin, base)
    label_all(base, one, p["id"], lambda i: {"choice": 0})
    label_all(base, two, p["id"], lambda i: {"choice": 1} if i in ("c000001", "c000003")
              else {"tie": True} if i == "c000004" else {"choice": 0})

    admin.goto(f"{base}/admin/projects/{p['id']}/review")
    expect(admin.locator("#counts")).to_have_text("3 to decide · 0 decided")
    expect(admin.locator("#a-raw")).to_have_text("40%")  # 2 of 5 items agree
    admin.click("#queue tr[data-item=c000001] button")
    expect(admin.locator("#item-id")).to_have_text("c000001")
    admin.fill("#final-form [name=note]", "B names the right capital")
    admin.click(f"#judgements tr[data-annotator={two_pid}] button.accept")
    expect(admin.locator("#decisions li").first).to_contain_text(f"final: b — accepted from {two_pid}")
    expect(admin.locator("#counts")).to_have_text("2 to decide · 1 decided")

    admin.click("#queue tr[data-item=c000004] button")
    expect(admin.locator("#item-id")).to_have_text("c000004")
    admin.select_option("#final-form [name=final]", "tie")
    admin.fill("#final-form [name=note]", "both are wrong")
    admin.click("#set-final")
    expect(admin.locator("#decisions li").first).to_contain_text("final: tie — set by")
    # a subset: the two annotators on the three disputed items only
    admin.fill("#agreement-form [name=items]", "c000001,c000003,c000004")
    admin.click("#agreement-form button")
    expect(admin.locator("#a-raw")).to_have_text("0%")
    admin.click("#per-item-box summary")
    expect(admin.locator("#per-item tbody tr")).to_have_count(3)
    expect(admin.locator("#per-item tr[data-item=c000004]")).to_contain_text("a ×1, tie ×1")
    shoot(admin, tmp_path, "review_queue")

    text = admin_call(admin, "GET", f"/api/admin/projects/{p['id']}/export").text()
    finals = {r.item_id: r for r in map(FeedbackRecord.model_validate_json, text.splitlines())
              if r.adjudication}
    assert set(finals) == {"c000001", "c000004"}
    assert (finals["c000001"].choice, finals["c000001"].adjudication.accepted_from,
            finals["c000001"].adjudication.note) == (1, two_pid, "B names the right capital")
    assert finals["c000004"].tie and finals["c000004"].adjudication.method == "set"
    assert finals["c000004"].adjudication.by == finals["c000001"].annotator.id
    assert errors == []


def test_a_tied_top_two_ranking_with_the_keyboard(server, browser, tmp_path):  # noqa: F811
    base, link = server
    errors = []
    admin = admin_page(browser, base, link, errors)
    rows = annotate_records(2, judges=("sim",))
    for r in rows:
        r["prompt_id"], r["prompt"] = "p0", rows[0]["prompt"]
    rows[1]["responses"] = ["answer three", "answer four"]
    p = admin_call(admin, "POST", "/api/admin/projects",
                   {"name": "Rank", "jsonl": "".join(json.dumps(r) + "\n" for r in rows),
                    "task_type": "ranking", "overlap": 1, "gold_count": 0}).json()
    _, pid, invite_url = annotator(admin, base)
    # the invite was used by the API call above; a fresh link for the browser
    invite_url = admin_call(admin, "POST", f"/api/admin/annotators/{pid}/invite").json()[
        "invite_url"]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(invite_url)
    page.click("text=Accept invite and start")
    page.wait_for_url(base + "/projects")
    page.goto(f"{base}/annotate/{p['id']}")
    expect(page.locator("#responses .response")).to_have_count(4)
    page.clock.fast_forward(4_000)
    page.keyboard.press("3")
    page.keyboard.press("=")
    page.keyboard.press("1")
    expect(page.locator("#rank-0 .rank")).to_have_text("#1 (tie)")
    expect(page.locator("#order")).to_contain_text("the rest (unranked)")
    shoot(page, tmp_path, "annotate_ranking_tie")
    page.keyboard.press("Enter")
    expect(page.locator("#mycount")).to_have_text(re.compile(r"^1 labelled"))
    text = admin_call(admin, "GET", f"/api/admin/projects/{p['id']}/export").text()
    (rec,) = map(FeedbackRecord.model_validate_json, text.splitlines())
    assert (rec.ranking, rec.ties, rec.ranking_levels()) == ([2, 0], [[2, 0]], [0, 1, 0, 1])
    assert errors == []
