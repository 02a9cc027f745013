"""The ops page in headless Chromium under the app's real Content-Security-Policy: no violations, charts drawn.

Same skip/fail rules and fixtures as tests/test_browser.py; the CSP checks are tests/test_browser_csp.py's.
"""

from __future__ import annotations

import os

from tests.test_browser import browser, live_shop  # noqa: F401  (pytest fixtures)
from tests.test_browser_csp import _check, _watched

PASSWORD = "browser ops password"


def test_ops_page_renders_under_the_csp_with_its_charts(browser, live_shop):  # noqa: F811
    from shoprank.users import create_user

    base, services = live_shop
    with services.db.session() as session:
        create_user(session, "ops-browser@example.com", PASSWORD, "ops")
    for query in ("wireless headphones", "laptop", "kettle"):
        services.search.search(query, limit=5)
    page, console = _watched(browser)
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=email]", "ops-browser@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/ops")
    _check(page, console, "/dashboard/ops")
    assert page.locator("svg.latency-bars g.latency").count() >= 6  # retrieval and total, p50/p95/p99 each
    assert page.locator("svg.latency-series polyline.line").count() == 2
    assert page.locator("table.workers tr.worker").count() >= 1
    # Deadline-aware depth: the median depth of the reranked searches, and each scorer's measured pairs/s.
    depth = page.locator("[data-card=rerank-depth] .big").inner_text()
    assert depth.split()[0].isdigit() and int(depth.split()[0]) > 0, depth
    assert page.locator("table.workers td[data-col=pairs-per-second]").count() >= 1
    if os.environ.get("SHOPRANK_SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SHOPRANK_SCREENSHOT_DIR']}/ops.png", full_page=True)
    # CSS from dashboard.css applies to the SVG (no inline styles): the p95 bar is filled with the brand indigo.
    fill = page.evaluate("getComputedStyle(document.querySelector('svg.latency-bars rect.bar.p95')).fill")
    assert fill == "rgb(99, 102, 241)"
    page.close()
