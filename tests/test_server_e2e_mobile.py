"""In headless Chromium against the real server (fixtures of test_server_e2e.py): after sign-in
the browser lands on the app's own page whatever `next` says, and every page works at a phone's
390 px width (nothing wider than the screen; the annotator can label with taps). Screenshots go
to the test's directory (RLXF_E2E_SHOTS=DIR keeps them)."""

import re

from test_server_e2e import browser, expect, pytestmark, server, shoot  # noqa: F401 (fixtures)

EVIL_NEXT = ["/%5Cevil.example/x", "/%09/evil.example", "//evil.example",
             "https://evil.example"]


def _admin(browser, base, link, **context):
    page = browser.new_context(**context).new_page()
    page.goto(link)
    page.fill("#password", "admin-password-1")
    page.click("text=Accept invite and start")
    page.wait_for_url(base + "/admin")
    return page


def test_sign_in_never_leaves_the_site_whatever_next_says(server, browser):
    base, link = server
    admin = _admin(browser, base, link)
    pid = admin.request.get(base + "/api/me").json()["pid"]
    for evil in EVIL_NEXT:
        page = browser.new_context().new_page()
        asked = []
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{base}/login?next={evil}")
        page.fill("#pid", pid)
        page.fill("#password", "admin-password-1")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/admin")  # "/" sends an admin to /admin
        assert page.url.startswith(base + "/"), (evil, page.url)
        assert not [u for u in asked if "evil.example" in u.split("?")[0]], (evil, asked)
        page.context.close()
    # a path on the site is kept
    page = browser.new_context().new_page()
    page.goto(f"{base}/login?next=/me")
    page.fill("#pid", pid)
    page.fill("#password", "admin-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/me")


# the outermost elements that reach past the right edge, to name them when a page is too wide
_TOO_WIDE = """() => [...document.querySelectorAll("body *")].filter(e => {
  const r = e.getBoundingClientRect(), p = e.parentElement.getBoundingClientRect();
  return r.right > innerWidth + 1 && p.right <= innerWidth + 1;
}).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
              (e.className ? "." + String(e.className).split(" ").join(".") : "") +
              " " + Math.round(e.getBoundingClientRect().right) + "px")"""


def _fits(page, what):
    """Nothing on the page is wider than the viewport (no sideways scrolling)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{what}: {width} px wide at 390 px: {page.evaluate(_TOO_WIDE)}"


def test_every_page_works_at_390_px(server, browser, tmp_path):
    base, link = server
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
             "is_mobile": True, "has_touch": True, "bypass_csp": True}  # bypass: to measure
    admin = _admin(browser, base, link, **phone)
    # measure once the page's script has filled its tables (the widest things on it)
    expect(admin.locator("#annotators tbody tr")).to_have_count(1)
    expect(admin.locator("#projects")).not_to_contain_text("Loading")
    _fits(admin, "admin")
    shoot(admin, tmp_path, "mobile-admin")
    admin.fill("input[name=name]", "Phone test")
    admin.fill("input[name=path]", "lab")
    admin.fill("input[name=gold_count]", "0")
    admin.click("#project-form button[type=submit]")
    admin.wait_for_url(re.compile(r".*/admin/projects/\d+$"))
    project_url = admin.url
    expect(admin.locator("#updated")).not_to_be_empty()
    _fits(admin, "admin project")
    shoot(admin, tmp_path, "mobile-admin-project")
    r = admin.request.post(base + "/api/admin/annotators", data={"note": "phone"},
                           headers={"X-CSRF-Token": admin.locator("meta[name=csrf-token]")
                                    .get_attribute("content")})
    invite = r.json()["invite_url"]

    person = browser.new_context(**phone).new_page()
    person.goto(invite if invite.startswith("http") else base + invite)
    _fits(person, "invite")
    person.click("text=Accept invite and start")
    person.wait_for_url(base + "/projects")
    _fits(person, "projects")
    shoot(person, tmp_path, "mobile-projects")
    person.goto(base + "/annotate/" + project_url.rsplit("/", 1)[1])
    expect(person.locator("#mycount")).to_have_text(re.compile(r"^0 labelled"))
    _fits(person, "annotate")
    shoot(person, tmp_path, "mobile-annotate")
    # labelling with taps: both responses and the buttons are on screen, one above the other
    a, b = person.locator("#resp-0").bounding_box(), person.locator("#resp-1").bounding_box()
    assert a["width"] <= 390 and b["y"] >= a["y"] + a["height"]
    person.clock.fast_forward(4_000)
    person.tap("#choose-0")
    expect(person.locator("#mycount")).to_have_text(re.compile(r"^1 labelled"))
    person.goto(base + "/me")
    _fits(person, "my data")
    shoot(person, tmp_path, "mobile-me")
    person.goto(base + "/login")
    _fits(person, "login")
