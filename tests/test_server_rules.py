"""Who may write, and what annotators may see (both databases): a closed project and a removed
member can no longer give, change or undo labels, and the export stays as it was; annotators
see no server paths and no private notes; only the import route takes large bodies."""

import json

from conftest import annotate_jsonl, annotate_records


def _attempts(site, person, labelled, fresh):
    """Status codes of submit (on an unlabelled assignment), change and undo (a labelled one)."""
    submit = site.label(person, fresh["id"], choice=1).status_code
    change = site.call("PUT", f"/api/assignments/{labelled['id']}/judgement", person,
                       json={"key": "change-key-0001", "choice": 1}).status_code
    undo = site.call("DELETE", f"/api/assignments/{labelled['id']}/judgement",
                     person).status_code
    return submit, change, undo


def test_a_closed_project_refuses_submit_change_and_undo(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(6), overlap=1, gold_count=0)
    ann = site.annotator()
    first, second = site.next(ann, p["id"], n=2)
    assert site.label(ann, first["id"], key="first-key-0001").status_code == 201
    before = site.export(p["id"])
    r = site.call("PATCH", f"/api/admin/projects/{p['id']}", site.admin, json={"status": "closed"})
    assert r.status_code == 200
    assert _attempts(site, ann, first, second) == (409, 409, 409)
    r = site.label(ann, second["id"])
    assert "closed" in r.json()["error"]
    # a retry of a label stored before the project closed still gets its answer back
    again = site.label(ann, first["id"], key="first-key-0001")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert site.export(p["id"]) == before


def test_a_removed_member_cannot_submit_change_or_undo(annotate_site):
    site = annotate_site
    p = site.project(annotate_records(6), overlap=2, gold_count=0, members_only=True)
    ann, other = site.annotator(), site.annotator()
    for person in (ann, other):
        r = site.call("PUT", f"/api/admin/projects/{p['id']}/members/{person['pid']}", site.admin)
        assert r.status_code == 200
    first, second = site.next(ann, p["id"], n=2)
    assert site.label(ann, first["id"]).status_code == 201
    before = site.export(p["id"])
    r = site.call("DELETE", f"/api/admin/projects/{p['id']}/members/{ann['pid']}", site.admin)
    assert r.json()["released"] == 1  # `second` went back to the pool
    assert _attempts(site, ann, first, second) == (404, 403, 403)
    assert site.export(p["id"]) == before
    (theirs,) = site.next(other, p["id"], n=1)  # a member who stays is unaffected
    assert site.label(other, theirs["id"]).status_code == 201
    # made members-only after work was handed out: the unlabelled assignment is refused too
    site.call("PATCH", f"/api/admin/projects/{p['id']}", site.admin, json={"members_only": False})
    (open_one,) = site.next(ann, p["id"], n=1)
    site.call("PATCH", f"/api/admin/projects/{p['id']}", site.admin, json={"members_only": True})
    assert site.label(ann, open_one["id"]).status_code == 403


def test_annotators_see_no_server_paths_or_private_notes(annotate_site):
    site = annotate_site
    run = site.data_dir / "items.jsonl"
    run.write_text(annotate_jsonl(annotate_records(3)))
    r = site.call("POST", "/api/admin/projects", site.admin,
                  json={"name": "from a path", "path": "items.jsonl", "gold_count": 0})
    assert r.status_code == 201 and r.json()["source"]["file"] == str(run)  # the admin sees it
    pid = r.json()["id"]
    ann = site.annotator(note="Dana, the night shift, slow on long prompts")
    seen = [site.call("GET", "/api/projects", ann).text,
            site.call("GET", f"/api/projects/{pid}", ann).text,
            site.call("POST", f"/api/projects/{pid}/next", ann).text,
            site.call("GET", "/api/me/data", ann).text,
            site.call("GET", "/api/me", ann).text]
    for text in seen:
        assert str(site.data_dir) not in text and "items.jsonl" not in text
        assert "night shift" not in text
    assert "source" not in json.loads(seen[1])


def test_only_the_import_route_takes_a_large_body(annotate_site):
    site = annotate_site
    big = "x" * (2 << 20)  # over the 1 MiB limit, under the 64 MiB import limit
    r = site.call("POST", "/api/admin/projects", site.admin,
                  json={"name": "big", "jsonl": big, "gold_count": 0})
    assert r.status_code == 400  # read and refused for what it is, not for its size
    p = site.project(annotate_records(2), gold_count=0)
    for method, path in [("PATCH", f"/api/admin/projects/{p['id']}"),
                         ("POST", f"/api/admin/projects/{p['id']}/release"),
                         ("PUT", f"/api/admin/projects/{p['id']}/members/h-00000000")]:
        r = site.call(method, path, site.admin, content=json.dumps({"guidelines": big}),
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (method, path, r.status_code)


def _bad_line(text: str) -> str:
    return annotate_jsonl(annotate_records(2)) + text + "\n" + annotate_jsonl(
        annotate_records(3)[2:])


def test_an_import_with_unstorable_text_is_refused_naming_the_line(annotate_site):
    """A lone surrogate escape (the JSONL's own "\\ud800") or a NUL in any text field: 400
    naming the line and the field; nothing is created, and the app keeps working."""
    site = annotate_site
    row = annotate_records(1)[0]
    cases = [("responses", lambda r: r["responses"].__setitem__(1, "ok \ud800 then")),
             ("prompt", lambda r: r.__setitem__("prompt", "nul \x00 here")),
             ("annotator.id", lambda r: r["annotator"].__setitem__("id", "x\udc00")),
             ("provenance.note", lambda r: r.__setitem__("provenance", {"note": "\udfff"}))]
    for field, spoil in cases:
        bad = json.loads(json.dumps(row))
        spoil(bad)
        text = _bad_line(json.dumps(bad))  # ensure_ascii: the file holds "\ud800" escapes
        assert "\\u" in text
        r = site.call("POST", "/api/admin/projects", site.admin,
                      json={"name": "poisoned", "jsonl": text, "filename": "fb.jsonl"})
        assert r.status_code == 400, r.text
        assert f"fb.jsonl line 5: \"{field}" in r.json()["error"], r.json()["error"]
    # the raw character in the request's JSON (not an escape in the file) is refused too
    r = site.call("POST", "/api/admin/projects", site.admin,
                  content=json.dumps({"name": "raw", "jsonl": '{"prompt": "\ud800"}\n',
                                      "filename": "raw.jsonl"}),
                  headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and "line 1" in r.text, r.text
    # from a path on the server as well
    (site.data_dir / "bad.jsonl").write_text(_bad_line(json.dumps(
        {**row, "responses": ["a", "b\ud800"]})))
    r = site.call("POST", "/api/admin/projects", site.admin,
                  json={"name": "poisoned", "path": "bad.jsonl"})
    assert r.status_code == 400 and "bad.jsonl line 5" in r.json()["error"], r.text
    assert site.call("GET", "/api/admin/projects", site.admin).json() == []
    p = site.project(annotate_records(3), gold_count=0)  # the store is fine
    ann = site.annotator()
    assert len(site.next(ann, p["id"])) == 3


def test_an_import_counts_what_it_skipped_and_merged(annotate_site):
    site = annotate_site
    rows = annotate_records(4)  # 4 items x 2 judges: 8 records, 4 merged into items
    single = {**{k: v for k, v in rows[0].items() if k != "choice"}, "id": "lonely/sim",
              "item_id": "lonely", "type": "rating", "responses": ["only one"],
              "ratings": {"helpful": 4.0}}  # a single-response record in a pairwise file
    clash = {**rows[2], "id": "c000001/sim-c", "responses": ["other", "text"]}
    p = site.project(rows + [single, clash], gold_count=0)
    assert p["n_items"] == 4
    assert p["import"] == {"records": 10, "items": 4, "merged": 5,
                           "merged_with_other_text": 1,
                           "skipped": {"not two responses (pairwise)": 1}}
    site.client.cookies.set("rlxf_session", site.admin["Authorization"].split()[1])
    page = site.client.get(f"/admin/projects/{p['id']}").text
    site.client.cookies.clear()
    assert "10 records → 4 items" in page and "1 (not two responses (pairwise))" in page
    assert "1 with other text, not used" in page
