"""End to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against
the real server process (`rlxf annotate serve`, uvicorn, SQLite): an admin signs in with the
first-start link, creates a project from a run directory, invites two annotators who label
with the keyboard (1 / 2 / t, strength keys, undo, review), then sees agreement and exports.

Screenshots go to the test's temporary directory; set RLXF_E2E_SHOTS=DIR to keep copies
(docs/img/ holds two of them)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import annotate_free_port, annotate_lab_run

from rlxf.feedback.record import FeedbackRecord

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Chromium not installed: apt-get install -y chromium "
                                       "(.ci/run does)")


@pytest.fixture
def server(tmp_path):
    """`rlxf annotate serve` on a free port; yields (base URL, first-start admin link)."""
    annotate_lab_run(tmp_path / "runs" / "lab", n_items=30)
    port = annotate_free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlxf.cli", "annotate", "serve", "--db", str(tmp_path / "a.db"),
         "--port", str(port), "--data-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    link = None
    deadline = time.time() + 60
    for line in proc.stdout:
        m = re.search(r"(http://\S+/invite/\S+)", line)
        link = m.group(1) if m else link
        if "rlxf annotate on" in line or time.time() > deadline:
            break
    base = f"http://127.0.0.1:{port}"
    import httpx
    while time.time() < deadline:
        try:
            if httpx.get(base + "/login", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    assert link, "the first start printed no admin link"
    yield base, link
    proc.kill()
    proc.wait(10)


@pytest.fixture
def browser(tmp_path):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def shoot(page, tmp_path, name):
    path = tmp_path / "shots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("RLXF_E2E_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def expect(locator):
    from playwright.sync_api import expect as pw_expect
    pw_expect.set_options(timeout=15_000)  # a busy CI machine can be slow; 5 s is the default
    return pw_expect(locator)


class GoldJudge:
    """The lab world's gold judge, applied to what the page shows: a careful annotator."""

    def __init__(self, run_dir: Path):
        from rlxf.world.kb import KnowledgeBase
        from rlxf.world.prompts import Prompt
        meta = json.loads((run_dir / "world" / "world.json").read_text())
        self.kb, self.weights = KnowledgeBase.from_json(meta["kb"]), meta["weights"]
        rows = (run_dir / "world" / "prompts.jsonl").read_text().splitlines()
        self.prompts = {p.text: p for p in (Prompt.from_json(json.loads(r)["prompt"])
                                            for r in rows)}

    def key(self, page) -> str:
        from rlxf.world.judge import score
        prompt = self.prompts[page.inner_text("#prompt")]
        ua, ub = (score(prompt, page.inner_text(f"#text-{i}"), self.kb).utility(self.weights)
                  for i in (0, 1))
        return "1" if ua > ub else "2" if ub > ua else "t"


def label(page, key, expect_done, strength=None):
    """Press the keys for one label and wait until the page shows it saved."""
    page.clock.fast_forward(4_000)  # a person reads for a few seconds (a bot would be flagged)
    if strength:
        page.keyboard.press(strength)
    page.keyboard.press(key)
    # locator assertions, not wait_for_function: the page's CSP forbids evaluating strings
    expect(page.locator("#mycount")).to_have_text(re.compile(rf"^{expect_done} labelled"))


def test_admin_and_two_annotators_end_to_end(server, browser, tmp_path):
    base, admin_link = server
    admin = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    errors = []
    admin.on("pageerror", lambda e: errors.append(str(e)))

    # 1. the admin accepts the first-start link (setting a password) and lands on /admin
    admin.goto(admin_link)
    admin.fill("#password", "admin-password-1")
    admin.click("text=Accept invite and start")
    admin.wait_for_url(base + "/admin")

    # 2. a project from the run directory: overlap 2, 4 gold items, a fifth of each queue
    admin.fill("#project-form [name=name]", "Lab world: helpful, honest, harmless")
    admin.fill("#project-form [name=path]", "lab")
    admin.fill("#project-form [name=overlap]", "2")
    admin.fill("#project-form [name=gold_count]", "4")
    admin.fill("#project-form [name=gold_rate]", "0.25")
    admin.click("text=Create project")
    admin.wait_for_url(re.compile(r".*/admin/projects/\d+$"))
    project_url = admin.url
    assert "world gold judge" in admin.inner_text("main")

    # 3. two invitations; each link is shown once
    links = []
    for note in ("Annotator one (pilot)", "Annotator two (pilot)"):
        admin.goto(base + "/admin")
        admin.fill("#invite-form [name=note]", note)
        admin.click("#invite-form button")
        admin.wait_for_selector("#invite-result:not([hidden])")
        links.append(admin.input_value("#invite-url"))
        admin.wait_for_selector(f"#annotators td:text('{note}')")
    shoot(admin, tmp_path, "admin_dashboard")

    # 4. both annotators label with the keyboard only: the first follows the gold judge,
    #    the second presses a fixed sequence (a careless annotator)
    judge = GoldJudge(tmp_path / "runs" / "lab")
    plans = [[judge.key] * 12,
             ["1", "2", "2", "1", "t", "1", "2", "2", "1", "t", "2", "1"]]
    pages = []
    for n, (link, plan) in enumerate(zip(links, plans)):
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.clock.install()
        page.goto(link)
        if n == 0:
            shoot(page, tmp_path, "invite")
            page.fill("#password", "annotator-pass-1")
        page.click("text=Accept invite and start")
        page.wait_for_url(base + "/projects")
        page.click(".project-card")
        page.wait_for_selector("#prompt:not(:empty)")
        page.keyboard.press("g")  # the guidelines are one key away
        assert page.is_visible("#guidelines") and "helpful" in page.inner_text("#guidelines")
        page.keyboard.press("g")
        assert not page.is_visible("#guidelines")
        for i, key in enumerate(plan, 1):
            label(page, key if isinstance(key, str) else key(page), i,
                  strength="d" if (n, i) == (1, 2) else None)
        # undo the last label, then label it again; review an earlier one with the arrow
        first_prompt = page.inner_text("#prompt")
        page.keyboard.press("u")
        expect(page.locator("#mycount")).to_have_text(re.compile(rf"^{len(plan) - 1} labelled"))
        assert "Undone" in page.inner_text("#status")
        last = plan[-1] if isinstance(plan[-1], str) else plan[-1](page)
        label(page, last, len(plan))
        page.keyboard.press("ArrowLeft")
        page.wait_for_selector("#viewing:not([hidden])")
        assert "Reviewing your last label" in page.inner_text("#viewing")
        page.keyboard.press("ArrowRight")
        page.wait_for_selector("#viewing", state="hidden")
        assert first_prompt  # (the page showed an item before undo)
        pages.append(page)
    # a screenshot with a strength chosen, before the key that saves it
    pages[1].keyboard.press("a")
    pages[1].clock.fast_forward(1_000)  # let the key-press flash end
    shoot(pages[1], tmp_path, "annotate")
    pages[1].keyboard.press("?")
    shoot(pages[1], tmp_path, "annotate_keys")
    pages[1].keyboard.press("?")

    # 5. an annotator sees their own data
    me = pages[0]
    me.goto(base + "/me")
    me.wait_for_selector("#labels tbody tr")
    assert me.locator("#labels tbody tr").count() == len(plans[0])
    shoot(me, tmp_path, "my_data")

    # 6. the admin sees progress, agreement and gold accuracy, and exports
    admin.goto(project_url)
    expect(admin.locator("#s-raw")).to_have_text(re.compile(r"%$"))
    rows = admin.locator("#people tbody tr")
    assert rows.count() == 2
    assert "Annotator one" in admin.inner_text("#people")
    careful = admin.locator("#people tr", has_text="Annotator one").inner_text()
    assert "100% of 3" in careful  # the gold judge's own answers: gold accuracy 100%
    raw = admin.inner_text("#s-raw")
    assert raw.endswith("%")
    shoot(admin, tmp_path, "admin_project")
    with admin.expect_download() as dl:
        admin.click("#export")
    exported = [json.loads(line) for line in Path(dl.value.path()).read_text().splitlines()]
    records = [FeedbackRecord.model_validate(r) for r in exported]
    assert len(records) == sum(map(len, plans))
    assert {r.source for r in records} == {"human"}
    assert not any("Annotator" in json.dumps(r) for r in exported)  # notes stay private
    strong = [r for r in records if r.strength == 3]
    assert len(strong) == 1  # the one label given with "d" (much better)
    assert errors == []
