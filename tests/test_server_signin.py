"""What a request without a session may cost, and sign-in's other protections: attempts
limited per account and per address (429), at most N password hashes at once, the invite token
checked before hashing, `next` only a path on this site, invite links from the configured
public URL, Secure cookies on request, sessions ended by a password reset and by "sign out
everywhere". The load side is bench/signin_flood.py; the browser side test_server_e2e.py."""

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rlxf.server import api
from rlxf.server.app import create_app
from rlxf.server.cli import _new_admin
from rlxf.server.errors import APIError
from rlxf.server.pages import same_origin_path
from rlxf.server.signin import ACCOUNT_BURST, SignInGuard
from rlxf.store import Store

sqlite_only = pytest.mark.parametrize("annotate_db", ["sqlite"], indirect=True)


def _with_password(site, password="correct horse battery"):
    r = site.call("POST", "/api/admin/annotators", site.admin, json={})
    person = site.accept(r.json()["invite_token"], password=password)
    return person, password


@sqlite_only
def test_the_41st_attempt_on_an_account_gets_429_without_hashing(annotate_site, monkeypatch):
    site = annotate_site
    site.client.app.state.signin.tarpit_s = 0.0  # the pause before a 429: its own test
    person, password = _with_password(site)
    assert ACCOUNT_BURST == 40
    hashed = []
    # argon2 (64 MiB, ~0.1 s) forty times would make a slow test: the limit counts attempts
    # before anything is hashed, so a stand-in that records the calls tells the same story
    monkeypatch.setattr(api, "verify_password", lambda *a: hashed.append(a) and False)
    for _ in range(39):  # attempts 2..40: accepting the invite was the first
        r = site.client.post("/api/login", json={"pid": person["pid"], "password": "wrong pw"})
        assert r.status_code == 401
    assert len(hashed) == 39
    hashed.clear()
    r = site.client.post("/api/login", json={"pid": person["pid"], "password": password})
    assert r.status_code == 429 and "this account" in r.json()["error"]
    assert int(r.headers["Retry-After"]) >= 1 and hashed == []
    # another account from the same address is not locked out by it
    other, other_pw = _with_password(site)
    monkeypatch.undo()
    r = site.client.post("/api/login", json={"pid": other["pid"], "password": other_pw})
    assert r.status_code == 200


def test_attempts_are_limited_per_client_address(tmp_path):
    store = Store(tmp_path / "a.db")
    store.migrate()
    app = create_app(store, migrate=False,
                     signin=SignInGuard(address_burst=3, address_per_s=0.001, tarpit_s=0.0))
    try:
        with TestClient(app) as client:
            codes = [client.post("/api/login", json={"pid": f"h-0000000{i}",
                                                     "password": "guess"}).status_code
                     for i in range(5)]
            r = client.post("/api/invites/accept", json={"token": "x" * 43})
        assert codes == [401, 401, 401, 429, 429]
        assert r.status_code == 429 and "your address" in r.json()["error"]
    finally:
        store.dispose()


def test_password_hashes_are_capped_and_the_queue_is_bounded():
    """Ten sign-ins at once with a cap of 2 hashes and 5 waiters: never more than 2 hash at
    once, 7 get through (2 hashing + 5 waiting), 3 are refused with 429 at once."""
    guard = SignInGuard(max_hashes=2, max_waiting=5)
    running, peak, lock = [0], [0], threading.Lock()

    def fake_hash():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return True

    async def attempt():
        try:
            return await guard.hash(fake_hash)
        except APIError as e:
            return e.status

    async def main():
        return await asyncio.gather(*(attempt() for _ in range(10)))

    results = asyncio.run(main())
    assert peak[0] == guard.peak_hashing == 2
    assert results.count(True) == 7 and results.count(429) == 3


def test_a_refused_attempt_is_answered_only_after_a_pause(monkeypatch):
    """A closed-loop flood (a fixed number of connections) slows to connections / TARPIT_S."""
    from rlxf.server import signin
    paused = []

    async def fake_sleep(s):
        paused.append(s)

    monkeypatch.setattr(signin.asyncio, "sleep", fake_sleep)
    guard = SignInGuard(account_burst=1)
    asyncio.run(guard.admit("10.0.0.1", "h-1"))
    with pytest.raises(APIError) as e:
        asyncio.run(guard.admit("10.0.0.1", "h-1"))
    assert e.value.status == 429 and paused == [signin.TARPIT_S] and signin.TARPIT_S >= 1


@sqlite_only
def test_the_invite_token_is_checked_before_hashing(annotate_site, monkeypatch):
    site = annotate_site
    hashed = []
    monkeypatch.setattr(api, "hash_password", lambda pw: hashed.append(pw) or "x")
    r = site.client.post("/api/invites/accept", json={"token": "n" * 43,
                                                      "password": "long enough pw"})
    assert r.status_code == 404 and hashed == []


def test_next_is_only_a_path_on_this_site():
    for evil in ["/\\evil.example/x", "/\t/evil.example", "//evil.example",
                 "https://evil.example", "/\n/evil.example", " //evil.example", "javascript:x"]:
        assert same_origin_path(evil) == "/", evil
    assert same_origin_path("/annotate/3?x=1") == "/annotate/3?x=1"


@sqlite_only
def test_invite_links_use_the_public_url_not_the_host_header(annotate_site, tmp_path):
    site = annotate_site
    r = site.call("POST", "/api/admin/annotators", site.admin, json={},
                  headers={"Host": "evil.example"})
    assert r.json()["invite_url"] == "/invite/" + r.json()["invite_token"]  # no public URL set
    store = Store(tmp_path / "p.db")
    store.migrate()
    _pid, token = _new_admin(store, "")
    try:
        with TestClient(create_app(store, migrate=False, public_url="https://ann.example.org/",
                                   secure_cookies=True)) as client:
            r = client.post("/api/invites/accept", json={"token": token})
            assert "secure" in r.headers["set-cookie"].lower()
            admin = {"Authorization": "Bearer " + r.json()["token"]}
            r = client.post("/api/admin/annotators", json={}, headers={**admin,
                                                                      "Host": "evil.example"})
            assert r.json()["invite_url"].startswith("https://ann.example.org/invite/")
    finally:
        store.dispose()


@sqlite_only
def test_a_password_reset_and_sign_out_everywhere_end_every_session(annotate_site):
    site = annotate_site
    person, password = _with_password(site)
    second = site.client.post("/api/login", json={"pid": person["pid"], "password": password})
    site.client.cookies.clear()
    sessions = [site.h(person), {"Authorization": "Bearer " + second.json()["token"]}]
    assert all(site.client.get("/api/me", headers=h).status_code == 200 for h in sessions)
    # the admin makes a new link (lost password); choosing a new password ends both sessions
    r = site.call("POST", f"/api/admin/annotators/{person['pid']}/invite", site.admin)
    fresh = site.accept(r.json()["invite_token"], password="a brand new password")
    assert [site.client.get("/api/me", headers=h).status_code for h in sessions] == [401, 401]
    assert site.client.post("/api/login", json={"pid": person["pid"],
                                                "password": password}).status_code == 401
    # sign out everywhere
    third = site.client.post("/api/login", json={"pid": person["pid"],
                                                 "password": "a brand new password"})
    site.client.cookies.clear()
    sessions = [site.h(fresh), {"Authorization": "Bearer " + third.json()["token"]}]
    r = site.client.post("/api/logout/everywhere", headers=sessions[0])
    assert r.json() == {"signed_out": True, "sessions_ended": 2}
    assert [site.client.get("/api/me", headers=h).status_code for h in sessions] == [401, 401]
