"""Search analytics in headless Chromium under the real CSP: from the query lists to one query's page, where each
variant's live ranking stands side by side with the clicks its products got.

Same skip/fail rules and fixtures as tests/test_browser.py; the CSP checks are tests/test_browser_csp.py's.
"""

from __future__ import annotations

import datetime as dt

from tests.experiment_support import ab_spec, running
from tests.test_browser import browser, live_shop  # noqa: F401  (pytest fixtures)
from tests.test_browser_csp import _check, _watched
from tests.test_search_analytics import KEY, _log

PASSWORD = "browser analytics password"


def test_query_page_shows_rankings_side_by_side(browser, live_shop, tmp_path):  # noqa: F811
    from experiments.ranking import NoExperiment, RankingConfig
    from search.service import SearchService
    from shoprank.users import create_user

    base, services = live_shop
    running(services, ab_spec(KEY))
    log = _log(dt.datetime.now(dt.UTC).replace(microsecond=0))
    control = SearchService(
        services.index, services.dispatcher, NoExperiment(RankingConfig(rerank=False)), deadline_ms=3000
    )
    from search.shop_search import ShopQuery, ShopSearch

    shown = ShopSearch(control, gate=services.shop_search.gate).search(
        ShopQuery(text="headphones", currency="USD", per_page=10)
    )
    top = [hit.item.sku for hit in shown.hits[:3]]  # what control's shoppers see first (the page's own path)
    for variant in ("control", "treatment"):
        for position, sku in enumerate(top, start=1):
            for _ in range(4 - position):  # the first product clicked most
                log.click(log.search("headphones", top, variant=variant), sku, position)
    log.store(services)
    with services.db.session() as session:
        create_user(session, "analyst-browser@example.com", PASSWORD, "merchandiser")

    page, console = _watched(browser)
    page.goto(f"{base}/dashboard/login?next=/dashboard/search-analytics")
    page.fill("input[name=email]", "analyst-browser@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/search-analytics")
    _check(page, console, "/dashboard/search-analytics")
    assert page.locator("#list-no_results tr[data-query=zzz]").count() == 1
    page.screenshot(path=str(tmp_path / "search-analytics.png"), full_page=True)

    page.click("#list-top a:text-is('headphones')")
    page.wait_for_url("**/dashboard/search-analytics/query?**")
    _check(page, console, "/dashboard/search-analytics/query")
    assert page.locator("#query-title").inner_text() == "“headphones”"
    columns = page.locator("#rankings .ranking")
    assert columns.count() == 2
    # side by side: the two columns share a row of the grid
    boxes = [columns.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    control_column = page.locator(".ranking[data-variant=control]")
    assert control_column.locator("li[data-sku]").count() == 10
    first = control_column.locator(f"li[data-sku='{top[0]}'] .clicks")
    assert first.inner_text() == "3 clicks"
    # analytics.css applies under style-src 'self': a clicked product's badge is green
    assert first.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(227, 246, 238)"
    page.screenshot(path=str(tmp_path / "search-query.png"), full_page=True)

    # the experiment page's Bayesian and CUPED panel, on shoppers with history before exposure
    from experiments.store import ingest_events, parse_events
    from experiments.store.exposures import log_exposure
    from tests.test_experiment_cuped_sql import KEY as CUPED_KEY
    from tests.test_experiment_cuped_sql import _simulate

    services.search.resolver.invalidate()
    with services.db.session() as session:
        from experiments.manage import get_experiment, stop_experiment

        stop_experiment(session, get_experiment(session, KEY), "tests")  # one running experiment at a time
    running(services, ab_spec(CUPED_KEY))
    events, exposures, _ = _simulate(dt.datetime.now(dt.UTC).replace(microsecond=0), 300)
    with services.db.session() as session:
        for start in range(0, len(events), 500):
            ingest_events(session, parse_events({"events": events[start : start + 500]}, max_batch=500))
        for unit, variant, language, at in exposures:
            log_exposure(session, experiment=CUPED_KEY, unit_id=unit, variant=variant, language=language, at=at)
    page.goto(f"{base}/dashboard/experiments/{CUPED_KEY}?engine=bayesian&cuped=1")
    _check(page, console, "/dashboard/experiments?engine=bayesian&cuped=1")
    table = page.locator("#engine-table")
    assert table.locator("tr[data-metric=clicks_per_unit] td.chance").inner_text().endswith("%")
    assert table.locator("tr[data-metric=clicks_per_unit] td.reduction").inner_text().endswith("%")
    page.locator("#engine-panel").screenshot(path=str(tmp_path / "engine-panel.png"))
    print(f"screenshots in {tmp_path}")
    page.close()
