"""The experiment report in headless Chromium (issue 15): a shopper's page sends what the search served, and the
report shows the delivery banner, the delivery and guardrail tables and one interval per comparison, under the
real CSP. Same skip/fail rules and fixtures as tests/test_browser.py.

The live shop reranks with the e5 bi-encoder fallback (no cross-encoder weights in tests), so a treatment
configured to rerank with a cross-encoder is, truthfully, not delivered as configured.
"""

from __future__ import annotations

import os
import shutil

from tests.test_browser import _wait_for, browser, live_shop  # noqa: F401  (pytest fixtures)
from tests.test_browser_csp import _check, _watched


def test_report_shows_delivery_guardrails_and_one_interval(browser, live_shop, tmp_path):  # noqa: F811
    from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, start_experiment
    from experiments.store import Event
    from shopctl.simulator import HttpTransport, SimulationConfig, Simulator
    from shoprank.users import create_user

    base, services = live_shop
    with services.db.session() as session:
        create_user(session, "merch@example.com", "browser test password", "merchandiser")
        spec = ExperimentSpec(
            key="browser-delivery",
            name="Cross-encoder rerank",
            variants=[VariantSpec("control", rerank=False), VariantSpec("cross-encoder", rerank=True)],
        )
        start_experiment(session, create_experiment(session, spec, "tests"), "tests")
    services.search.resolver.invalidate()

    shopper, console = _watched(browser)
    shopper.goto(f"{base}/search?q=wireless+headphones&lang=en")
    shopper.wait_for_selector("#results article.card")
    _check(shopper, console, "search page")
    impression_id = shopper.get_attribute("#results", "data-impression-id")
    with services.db.session() as session:
        stored = _wait_for(lambda: session.get(Event, impression_id) or session.expire_all())
        assert stored is not None, "shop.js sent no impression"
        # shop.js sent what the search served
        assert stored.rerank_status in ("ok", "disabled") and stored.search_ms is not None and stored.search_ms > 0
        if stored.rerank_status == "ok":
            assert stored.scorer_kind == "bi-encoder-fallback" and stored.rerank_depth and stored.rerank_depth > 0

    config = SimulationConfig(users=60, ctr_lift=0.3, cvr=0.5, days=3, seed=15, results_per_page=5, concurrency=4)
    Simulator(HttpTransport(base), config).run()

    page, console = _watched(browser)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{base}/dashboard/experiments/browser-delivery")
    page.fill("input[name=email]", "merch@example.com")
    page.fill("input[name=password]", "browser test password")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/experiments/browser-delivery")
    _check(page, console, "report")
    banner = page.locator('.delivery-banner[data-variant="cross-encoder"]')
    assert banner.count() == 1 and banner.is_visible()
    text = banner.text_content()
    assert "bi-encoder-fallback" in text and "do not ship cross-encoder" in text
    assert page.locator('#delivery-table tr[data-variant="control"] .chip.bad').count() == 0
    assert page.locator('#quality-table tr[data-variant="cross-encoder"] [data-guardrail]').count() == 3
    ctr_cell = page.locator('#summary-table tr[data-metric="ctr"][data-variant="cross-encoder"] td').nth(5)
    assert ctr_cell.text_content().startswith("[")  # one interval, the same everywhere
    assert "clicks per results page" in page.locator("#summary-table").text_content()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SHOPRANK_SCREENSHOT_DIR"):
        shutil.copy(shot, os.path.join(os.environ["SHOPRANK_SCREENSHOT_DIR"], "report-delivery.png"))

    page.goto(f"{base}/dashboard/")
    assert page.locator("span.chip.bad", has_text="Delivery").count() == 1
