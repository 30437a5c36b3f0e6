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


def test_ranking_critique_and_steps_with_the_keyboard(server, browser, tmp_path):
    """The admin creates a ranking and a critique project from a run directory and a steps
    project from an uploaded JSONL; an annotator ranks k responses with number keys (r starts
    over, Enter saves, the last one places itself), writes critiques (Ctrl+Enter saves, Esc
    leaves the box) and marks steps (c / x, Enter); the export has all three kinds."""
    base, admin_link = server
    admin = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    errors = []
    admin.on("pageerror", lambda e: errors.append(str(e)))
    admin.goto(admin_link)
    admin.click("text=Accept invite and start")
    admin.wait_for_url(base + "/admin")
    urls = {}
    for task, name in (("ranking", "Rank the lab answers"), ("critique", "Critique the answers")):
        admin.goto(base + "/admin")
        admin.fill("#project-form [name=name]", name)
        admin.fill("#project-form [name=path]", "lab")
        admin.select_option("#project-form [name=task_type]", task)
        admin.fill("#project-form [name=overlap]", "1")
        admin.click("text=Create project")
        admin.wait_for_url(re.compile(r".*/admin/projects/\d+$"))
        urls[task] = admin.url
    steps_file = tmp_path / "steps.jsonl"
    steps_file.write_text(json.dumps({
        "id": "s1/sim", "item_id": "s1", "type": "critique", "source": "simulated",
        "prompt": "is hulm the capital of veloria ?", "annotator": {"id": "sim"},
        "responses": ["hulm is a city .\nhulm is the capital of tamsk .\nso : no ."],
        "critique": "the second step is wrong"}) + "\n")
    admin.goto(base + "/admin")
    admin.fill("#project-form [name=name]", "Check each step")
    admin.check("#project-form [name=source][value=upload]")
    admin.set_input_files("#project-form [name=file]", str(steps_file))
    admin.select_option("#project-form [name=task_type]", "steps")
    admin.click("text=Create project")
    admin.wait_for_url(re.compile(r".*/admin/projects/\d+$"))
    urls["steps"] = admin.url
    admin.goto(base + "/admin")
    admin.fill("#invite-form [name=note]", "ranker")
    admin.click("#invite-form button")
    admin.wait_for_selector("#invite-result:not([hidden])")
    link = admin.input_value("#invite-url")

    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.clock.install()
    page.goto(link)
    page.click("text=Accept invite and start")
    page.wait_for_url(base + "/projects")
    expect(page.locator("#projects")).to_contain_text("Rank responses")
    page.goto(base + "/annotate/" + urls["ranking"].rsplit("/", 1)[1])
    page.wait_for_selector("#prompt:not(:empty)")
    orders, shot = [], False
    for i in range(1, 5):
        n = page.locator("#responses .response").count()
        assert 2 <= n <= 9
        page.clock.fast_forward(4_000)
        if i == 1:  # change of mind: start over
            page.keyboard.press("1")
            expect(page.locator("#rank-0 .rank")).to_have_text("#1")
            page.keyboard.press("r")
            expect(page.locator("#rank-0 .rank")).to_have_text("")
        order = list(range(n - 1, -1, -1))  # worst-first of what is shown: last response best
        for k in order[:-1]:
            page.keyboard.press(str(k + 1))
        expect(page.locator(f"#rank-{order[-1]} .rank")).to_have_text(f"#{n}")  # placed itself
        if n >= 3 and not shot or i == 4 and not shot:  # docs/img: a k-wise item if any
            page.clock.fast_forward(1_000)
            shoot(page, tmp_path, "annotate_ranking")
            shot = True
        page.keyboard.press("Enter")
        expect(page.locator("#mycount")).to_have_text(re.compile(rf"^{i} labelled"))
        orders.append(order)
    assert "Saved" in page.inner_text("#status")

    page.goto(base + "/annotate/" + urls["critique"].rsplit("/", 1)[1])
    page.wait_for_selector("#text-0:not(:empty)")
    critiques = ["the capital is wrong .", "flattery : remove \"what a great question\" ."]
    for i, text in enumerate(critiques, 1):
        page.clock.fast_forward(4_000)
        expect(page.locator("#answer-text")).to_be_focused()  # typing starts at once
        page.keyboard.type(text)
        if i == 1:  # Esc leaves the box: keys work again (g opens the guidelines)
            page.keyboard.press("Escape")
            page.keyboard.press("g")
            assert page.is_visible("#guidelines") and "wrong" in page.inner_text("#guidelines")
            page.keyboard.press("g")
            page.keyboard.press("e")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#mycount")).to_have_text(re.compile(rf"^{i} labelled"))
    shoot(page, tmp_path, "annotate_critique")

    page.goto(base + "/annotate/" + urls["steps"].rsplit("/", 1)[1])
    expect(page.locator("#steps li")).to_have_count(3)
    page.clock.fast_forward(4_000)
    for key in ("c", "x", "c"):
        page.keyboard.press(key)
    expect(page.locator("#steps li.incorrect")).to_have_count(1)
    page.clock.fast_forward(1_000)
    shoot(page, tmp_path, "annotate_steps")
    page.keyboard.press("Enter")
    expect(page.locator("#mycount")).to_have_text(re.compile(r"^1 labelled"))

    exported = {}
    for task in ("ranking", "critique", "steps"):
        admin.goto(urls[task])
        with admin.expect_download() as dl:
            admin.click("#export")
        exported[task] = [FeedbackRecord.model_validate(json.loads(line)) for line in
                          Path(dl.value.path()).read_text().splitlines()]
    assert [r.ranking for r in exported["ranking"]] and all(
        r.type == "ranking" and r.ranking == list(range(len(r.responses) - 1, -1, -1))
        for r in exported["ranking"])
    assert len(exported["ranking"]) == 4
    assert sorted(r.critique for r in exported["critique"]) == sorted(critiques)
    assert all(r.type == "critique" and len(r.responses) == 1 for r in exported["critique"])
    (steps,) = exported["steps"]
    assert steps.type == "rating" and steps.ratings == {"step 1": 1.0, "step 2": 0.0,
                                                        "step 3": 1.0}
    assert errors == []
