"""The Content-Security-Policy in a real browser: shop and dashboard pages load in headless Chromium with zero
CSP violations, and still work under it (stylesheet applied, charts drawn, shop.js sends its beacons).

Violations are collected twice: the console ("Refused to ...") and the page's ``securitypolicyviolation``
events. Same skip/fail rules as tests/test_browser.py (whose fixtures this reuses).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.test_browser import _wait_for, browser, live_shop  # noqa: F401  (pytest fixtures)

PASSWORD = "browser csp password"
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def _watched(browser_instance: Any):
    page = browser_instance.new_page(viewport={"width": 1300, "height": 900})
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.add_init_script(LISTEN)
    return page, console


def _check(page, console: list[str], url: str) -> None:
    violations = page.evaluate("window.__csp || []")
    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert violations == [] and refused == [], (url, violations, refused)
    assert not [line for line in console if line.startswith("pageerror")], (url, console)
    # the stylesheet loaded under style-src 'self' and applies: body has a non-default font or margin
    assert page.evaluate("document.styleSheets.length >= 1 && document.styleSheets[0].cssRules.length > 10"), url


def test_shop_pages_render_under_the_csp_and_shop_js_sends_events(browser, live_shop):  # noqa: F811
    from experiments.store import Event

    base, services = live_shop
    page, console = _watched(browser)
    for path in (
        "/?lang=en",
        "/search?q=wireless+headphones&lang=en",
        "/search?q=%D8%B3%D9%85%D8%A7%D8%B9%D8%A7%D8%AA&lang=ar",
        "/c/headphones-audio?lang=en",
        "/deals?lang=en",
        "/help?lang=ar",
    ):
        page.goto(base + path)
        _check(page, console, path)
    assert page.get_attribute("html", "dir") == "rtl"  # the Arabic page is right-to-left

    page.goto(f"{base}/search?q=wireless+headphones&lang=en")
    page.wait_for_selector("#results article.card")
    impression_id = page.get_attribute("#results", "data-impression-id")
    page.locator("#results article.card:has(button.btn-cart:not([disabled]))").first.locator("a.card-link").click()
    page.wait_for_url("**/product/**")
    _check(page, console, "product")
    with page.expect_response(lambda response: response.url.endswith("/api/events")) as stored:
        page.click("button.btn-cart")
    assert stored.value.status < 300
    page.wait_for_selector("#toast.show")
    assert page.text_content("#cart-count") == "1"
    _check(page, console, "product after add to cart")

    def stored_types() -> set[str]:
        with services.db.session() as session:
            rows = session.scalars(select(Event.type).where(Event.impression_id == impression_id)).all()
        return set(rows) if {"click", "add_to_cart"} <= set(rows) else set()

    assert _wait_for(stored_types) >= {"click", "add_to_cart"}  # shop.js beacons went through under the CSP

    # a listing without a query (where autocomplete's brand suggestions lead) is stored as a listing view
    page.goto(f"{base}/search?brand=Sony&lang=en")
    page.wait_for_selector("#results article.card")
    listing_id = page.get_attribute("#results", "data-impression-id")

    def stored_listing() -> str | None:
        with services.db.session() as session:
            return session.scalar(select(Event.listing).where(Event.event_id == listing_id))

    assert _wait_for(stored_listing) == "brand"

    # control: the detector does see a violation (an injected inline style is refused and reported)
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<div style=\"color: red\">injected</div>')")
    page.wait_for_function("window.__csp.some(function (v) { return v.indexOf('style-src') === 0; })")


def test_dashboard_pages_render_under_the_csp(browser, live_shop):  # noqa: F811
    from experiments.manage import create_experiment, start_experiment
    from shoprank.users import create_user
    from tests.experiment_support import ab_spec

    base, services = live_shop
    with services.db.session() as session:
        create_user(session, "csp-admin@example.com", PASSWORD, "admin")
        start_experiment(session, create_experiment(session, ab_spec("csp-ab"), "tests"), "tests")
    page, console = _watched(browser)
    page.goto(f"{base}/dashboard/login")
    _check(page, console, "login")
    page.fill("input[name=email]", "csp-admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    _check(page, console, "experiment list")
    assert page.locator("a.exp-link").count() == 1

    page.goto(f"{base}/dashboard/experiments/csp-ab")
    _check(page, console, "experiment report")
    assert page.locator("svg.chart").count() >= 1  # inline SVG charts are markup, not script: allowed
    # chart colours come from classes in dashboard.css (no style attributes): the CSS rule reached the SVG
    assert page.evaluate("getComputedStyle(document.querySelector('svg.chart text')).fontSize") != ""

    for path in ("/dashboard/admin/users", "/dashboard/admin/api-keys", "/dashboard/calculator"):
        page.goto(base + path)
        _check(page, console, path)
    page.goto(f"{base}/dashboard/admin/api-keys")
    page.fill("input[name=name]", "csp key")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key code.secret")
    _check(page, console, "api key created")
