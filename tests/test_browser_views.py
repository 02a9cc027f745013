"""The report's views in headless Chromium (issue 23): a multivariant experiment with an arm that sold nothing
and an interleaving experiment, in the frequentist, sequential, Bayesian and CUPED views, render under the CSP,
and every comparison row shows the statistic of its own view beside its interval. Screenshots go to
``SHOPRANK_SCREENSHOT_DIR`` when set. Same skip/fail rules and fixtures as tests/test_browser.py."""

from __future__ import annotations

import os
import shutil

from tests.test_browser import browser, live_shop  # noqa: F401  (pytest fixtures)
from tests.test_browser_csp import _check, _watched

VIEWS = {
    "frequentist": "",
    "sequential": "?sequential=1",
    "bayesian": "?engine=bayesian",
    "cuped": "?cuped=1",
    "bayesian-cuped": "?engine=bayesian&cuped=1",
}


def test_every_view_of_the_demo_like_experiments_in_chromium(browser, live_shop, tmp_path):  # noqa: F811
    from experiments.manage import VariantSpec
    from shoprank.users import create_user
    from tests.experiment_support import ab_spec, running
    from tests.test_views_agree import _seed_ab, _seed_interleaving

    base, services = live_shop
    with services.db.session() as session:
        create_user(session, "merch@example.com", "browser test password", "merchandiser")
    multi = ab_spec(
        "b-multi",
        variants=[VariantSpec("control", rerank=False)] + [VariantSpec(f"t{i}") for i in (1, 2, 3)],
        primary_metric="conversion_rate",
        namespace="walk",
        namespace_end=0.5,
    )
    running(services, multi)
    _seed_ab(
        services, "b-multi", {"control": (0.3, 0.12), "t1": (0.32, 0.12), "t2": (0.3, 0.0), "t3": (0.4, 0.14)}, 240, 2
    )
    running(services, ab_spec("b-il", kind="interleaving", namespace="walk", namespace_start=0.5))
    _seed_interleaving(services, "b-il")

    page, console = _watched(browser)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{base}/dashboard/experiments/b-multi")
    page.fill("input[name=email]", "merch@example.com")
    page.fill("input[name=password]", "browser test password")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/experiments/b-multi")
    shots = []
    for name, query in VIEWS.items():
        page.goto(f"{base}/dashboard/experiments/b-multi{query}")
        _check(page, console, name)
        rows = page.locator("#summary-table tr[data-verdict]")
        assert rows.count() == 12, name  # 4 metrics x 3 treatments
        header = page.locator("#summary-table thead").text_content()
        assert ("Chance to win" in header) == ("bayesian" in name), name
        assert ("90 % credible" in header) == ("bayesian" in name), name
        broken = page.locator('#summary-table tr[data-metric="conversion_rate"][data-variant="t2"]')
        assert broken.get_attribute("data-verdict") != "untestable", name  # tested in every view
        export = page.locator("#export-csv").get_attribute("href")
        assert (("engine=bayesian" in export) == ("bayesian" in name)) and (("cuped=1" in export) == ("cuped" in name))
        shot = tmp_path / f"report-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        shots.append(shot)
    page.goto(f"{base}/dashboard/experiments/b-il")
    _check(page, console, "interleaving")
    shot = tmp_path / "report-interleaving.png"
    page.screenshot(path=str(shot), full_page=True)
    shots.append(shot)
    page.goto(f"{base}/dashboard/")
    _check(page, console, "list")
    assert page.locator('tr[data-key="b-multi"]').count() == 1
    shot = tmp_path / "list.png"
    page.screenshot(path=str(shot), full_page=True)
    shots.append(shot)
    if os.environ.get("SHOPRANK_SCREENSHOT_DIR"):
        for shot in shots:
            shutil.copy(shot, os.path.join(os.environ["SHOPRANK_SCREENSHOT_DIR"], shot.name))
