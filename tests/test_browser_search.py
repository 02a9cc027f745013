"""Shopper tasks in headless Chromium: a price limit typed in Spanish, narrowing by brand, sorting by price, page 2,
the no-results page, keyboard autocomplete, and cards whose buttons stay inside them in every UI language.

Screenshots (en, es, zh, ar) go to ``$SHOPRANK_SCREENSHOTS`` when set (to look at), else to the test's tmp dir.
Same skip/fail rules as tests/test_browser.py (whose fixtures this reuses).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from search.filters import FxRates
from tests.test_browser import browser, live_shop  # noqa: F401  (pytest fixtures)
from webapp.i18n import UI_LANGUAGES

FX = FxRates()
CARD_PRICES = """(inStockOnly) => Array.from(document.querySelectorAll('#results article.card'))
  .filter(card => !inStockOnly || !card.querySelector('button.btn-buy').disabled)
  .map(card => {
    const buy = card.querySelector('button.btn-buy');
    return [buy.getAttribute('data-price'), buy.getAttribute('data-currency')];
  })"""
OVERFLOWING_BUTTONS = """() => {
  const bad = [];
  document.querySelectorAll('article.card').forEach(card => {
    const box = card.getBoundingClientRect();
    card.querySelectorAll('.btn').forEach(button => {
      const b = button.getBoundingClientRect();
      if (b.left < box.left - 0.5 || b.right > box.right + 0.5 || button.scrollWidth > button.clientWidth + 1) {
        bad.push(card.getAttribute('data-sku') + ': ' + button.textContent.trim());
      }
    });
  });
  return bad;
}"""


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SHOPRANK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _prices_in(page, currency: str, in_stock_only: bool = False) -> list[float]:
    return [FX.convert(Decimal(price), code, currency) for price, code in page.evaluate(CARD_PRICES, in_stock_only)]


def test_shopper_tasks(browser, live_shop, tmp_path):  # noqa: F811
    base, _services = live_shop
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="es-ES")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # 1. Spanish: running shoes under 50 euros → only products at or below 50 € after conversion, a removable chip
    page.goto(f"{base}/?lang=es")
    page.fill("input[name=q]", "zapatillas para correr por menos de 50 euros")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("#results article.card")
    assert page.get_attribute("#results", "data-currency") == "EUR"
    prices = _prices_in(page, "EUR")
    assert prices and max(prices) <= 50.0 + 1e-9
    chip = page.locator('#applied-filters [data-filter="price_from_query"]')
    assert "menos de 50 euros" in chip.text_content()
    assert page.locator(".price-approx").count() >= 1  # listings in other currencies show ≈ euros
    page.screenshot(path=str(shots / "search-es.png"), full_page=True)
    chip.locator("a").click()
    page.wait_for_load_state()
    assert page.input_value("input[name=q]") == "zapatillas para correr"
    assert page.locator('#applied-filters [data-filter="price_from_query"]').count() == 0

    # 2. English: narrow by brand (the checkbox applies itself)
    page.goto(f"{base}/search?q=headphones&lang=en")
    brand = page.locator("#facet-brand input[name=brand]").first
    wanted = brand.get_attribute("value")
    with page.expect_navigation():
        brand.check()
    brands = page.locator("#results article.card .brand").all_text_contents()
    assert brands and {b.strip().casefold() for b in brands} == {wanted.casefold()}
    assert page.locator('#applied-filters [data-filter="brand"]').count() == 1

    # 3. sort by price, lowest first (compared in one currency)
    page.goto(f"{base}/search?q=headphones&lang=en")
    with page.expect_navigation():
        page.select_option("#sort", "price_asc")
    prices = _prices_in(page, "USD", in_stock_only=True)  # out-of-stock products follow the ones in stock
    assert len(prices) > 3 and prices == sorted(prices)
    buyable = page.locator("#results article.card button.btn-buy").evaluate_all("bs => bs.map(b => !b.disabled)")
    assert buyable == sorted(buyable, reverse=True)
    page.screenshot(path=str(shots / "search-en.png"), full_page=True)

    # 4. page 2 continues where page 1 ended, and its impression is logged with those positions
    page.goto(f"{base}/search?q=headphones&lang=en&per_page=8")
    first_page = page.locator("#results article.card").evaluate_all("cards => cards.map(c => c.dataset.sku)")
    with page.expect_response(lambda r: r.url.endswith("/api/events")):
        page.click(".pager a[rel=next]")
    page.wait_for_selector("#results article.card")
    assert page.locator("#results article.card").first.get_attribute("data-position") == "9"
    second_page = page.locator("#results article.card").evaluate_all("cards => cards.map(c => c.dataset.sku)")
    assert second_page and not set(first_page) & set(second_page)
    assert page.locator('.pager [aria-current="page"]').text_content().strip() == "2"

    # 5. nonsense → a no-results page with suggestions, not 24 unrelated products
    page.goto(f"{base}/search?q=xyzzyqwerty&lang=en")
    assert page.locator("#no-results").is_visible()
    assert page.locator("#results article.card").count() == 0
    assert page.locator("#no-results a.chip").count() >= 5
    page.screenshot(path=str(shots / "no-results-en.png"))

    # 6. autocomplete by keyboard: type, arrow down, Enter opens the suggestion
    page.goto(f"{base}/?lang=en")
    page.click("input[name=q]")
    page.keyboard.type("sony", delay=20)
    page.wait_for_selector("#suggestions li[role=option]")
    assert page.get_attribute("input[name=q]", "aria-expanded") == "true"
    page.screenshot(path=str(shots / "autocomplete-en.png"))
    page.keyboard.press("ArrowDown")
    selected = page.locator('#suggestions li[aria-selected="true"]')
    assert page.get_attribute("input[name=q]", "aria-activedescendant") == selected.get_attribute("id")
    target = selected.get_attribute("data-url")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(target)
    page.goto(f"{base}/?lang=en")
    page.click("input[name=q]")
    page.keyboard.type("son")
    page.wait_for_selector("#suggestions li[role=option]")
    page.keyboard.press("Escape")
    assert page.locator("#suggestions").is_hidden()
    assert errors == []


def test_zh_and_ar_results_pages(browser, live_shop, tmp_path):  # noqa: F811
    base, _services = live_shop
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{base}/search?q=" + "降噪耳机 1000元以下" + "&lang=zh")
    page.wait_for_selector("#results article.card")
    assert max(_prices_in(page, "CNY")) <= 1000 + 1e-9
    assert "耳机与音频" in page.text_content("#facet-category")
    page.screenshot(path=str(shots / "search-zh.png"), full_page=True)

    page.goto(f"{base}/search?q=" + "سماعات أقل من 400 ريال" + "&lang=ar")
    page.wait_for_selector("#results article.card")
    assert page.get_attribute("html", "dir") == "rtl"
    assert max(_prices_in(page, "SAR")) <= 400 + 1e-9
    # right to left: the filter column is on the right of the results
    facets, grid = page.locator("aside.facets").bounding_box(), page.locator(".results-main").bounding_box()
    assert facets["x"] > grid["x"]
    page.screenshot(path=str(shots / "search-ar.png"), full_page=True)


def test_card_buttons_stay_inside_their_cards_in_every_language(browser, live_shop):  # noqa: F811
    base, _services = live_shop
    for width in (1280, 1024, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        for language in UI_LANGUAGES:
            for path in (f"/search?q=headphones&lang={language}", f"/?lang={language}"):
                page.goto(base + path)
                page.wait_for_selector("article.card")
                assert page.evaluate(OVERFLOWING_BUTTONS) == [], (width, path)
        page.close()
