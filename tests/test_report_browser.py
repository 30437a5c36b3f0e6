"""The report in a real browser: headless Debian Chromium (/usr/bin/chromium, driven by
Playwright as in tests/test_server_e2e.py) opens index.html of a hand-written run and of a real
tiny run (the session's `tiny_run`: tests/configs/tiny.toml through the CLI), and the comparison
page; every section heading renders, every plot's <svg> is visible with a non-zero size, no
console error occurs, and on a phone-sized viewport nothing overflows sideways. Screenshots go to
the test's temporary directory; set RLXF_REPORT_SHOTS=DIR to keep copies (docs/img/report.png
is one).

The tiny run also checks, end to end, that the cards the audit writes beside the models do not
make `rlxf run` redo any stage, and that `rlxf audit` on a real run is byte-deterministic."""

import json
import os
import shutil
from pathlib import Path

import pytest
from report_fakes import make_run
from tiny_runs import TINY, copy_run, rlxf

from rlxf.audit.compare import SECTIONS as COMPARE_SECTIONS
from rlxf.audit.compare import write_comparison
from rlxf.audit.render import SECTIONS, tension_rows
from rlxf.audit.report import write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
DESKTOP, PHONE = {"width": 1100, "height": 900}, {"width": 390, "height": 844}
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Chromium not installed: apt-get install -y chromium "
                                           "(.ci/run does)")


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report-fake")
    make_run(root / "a")
    make_run(root / "b", policy_metrics={"rate/sycophancy": 0.3, "gold/utility": 0.5})
    for run in (root / "a", root / "b"):
        write_report(run)
    write_comparison(root / "a", root / "b")
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, html: Path, viewport: dict):
    """(page, console errors) for a local HTML file."""
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def check_page(page, errors, sections, viewport) -> int:
    """Every section heading visible, every <svg> visible and non-empty, no console error, no
    sideways scrolling. Returns the number of plots."""
    for key, title in sections:
        heading = page.locator(f"section#{key} > h2")
        assert heading.is_visible(), key
        assert heading.inner_text() == title
    svgs = page.locator("svg").all()
    for i, svg in enumerate(svgs):
        svg.scroll_into_view_if_needed()
        box = svg.bounding_box()
        assert svg.is_visible() and box and box["width"] > 50 and box["height"] > 50, i
    assert errors == []
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= viewport["width"], f"{overflow}px wide on a {viewport['width']}px screen"
    return len(svgs)


def shoot(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    path = tmp_path / "shots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("RLXF_REPORT_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


@needs_chromium
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_fake_run_report_renders(browser, fake_runs, tmp_path, viewport):
    page, errors = open_page(browser, fake_runs[0] / "report" / "index.html", viewport)
    n = check_page(page, errors, SECTIONS, viewport)
    assert n == 3 + 8  # frontier x2, over-optimisation, 8 failure modes with data
    # a policy − SFT cell is marked lost / gained / within noise exactly where the report has
    # its interval (the fake run has none: no cell may claim a change beyond noise)
    report = json.loads((fake_runs[0] / "report" / "report.json").read_text())
    marked = sum(1 for row in tension_rows(report) for cell in row["cells"] if cell["class"])
    assert page.locator("td.lost, td.gained, td.noise").count() == marked
    assert page.locator(".sample").count() == 8
    shoot(page, tmp_path, f"report-fake-{viewport['width']}")
    page.close()


@needs_chromium
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_comparison_renders(browser, fake_runs, tmp_path, viewport):
    page, errors = open_page(browser, fake_runs[1] / "report" / "compare-a.html", viewport)
    assert check_page(page, errors, COMPARE_SECTIONS, viewport) == 2 * 8
    assert page.locator("tr.better").count() >= 1 and page.locator("tr.worse").count() >= 1
    shoot(page, tmp_path, f"compare-fake-{viewport['width']}")
    page.close()


@needs_chromium
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_tiny_run_report_renders(browser, tiny_run, tmp_path, viewport):
    page, errors = open_page(browser, tiny_run / "report" / "index.html", viewport)
    assert check_page(page, errors, SECTIONS, viewport) >= 3 + 6
    assert page.locator("article.fm").count() == 10
    shoot(page, tmp_path, f"report-tiny-{viewport['width']}")
    page.close()


def test_tiny_run_audit_is_deterministic_and_its_cards_do_not_rerun_stages(tiny_run,
                                                                              tmp_path):
    # the session's tiny run (tests/conftest.py) ended with the audit: report and cards; the
    # copy keeps the folder name, which the report shows
    tiny_run = copy_run(tiny_run, tmp_path / tiny_run.name)
    files = [tiny_run / "report" / n for n in ("report.json", "report.md", "index.html")]
    cards = [tiny_run / s / "model" / "README.md" for s in ("pretrain", "sft", "reward",
                                                            "policy")]
    cards.append(tiny_run / "feedback" / "DATASHEET.md")
    before = {p: p.read_bytes() for p in files + cards}
    rlxf("audit", tiny_run)
    assert {p: p.read_bytes() for p in files + cards} == before
    proc = rlxf("run", TINY, "--out", tiny_run)
    ran = [json.loads(line)["stage"] for line in (tiny_run / "ledger.jsonl").read_text().splitlines()]
    assert proc.stderr.count("up to date, skipped") == len(set(ran))
