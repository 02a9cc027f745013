"""Server-rendered shop pages: languages (RTL for Arabic), language badges, prices, escaping, beacon hooks."""

from __future__ import annotations

import re

import pytest

from webapp.i18n import CATALOG_DIR, UI_LANGUAGES, catalog


def test_every_ui_language_has_every_string():
    keys = set(catalog("en"))
    for language in UI_LANGUAGES:
        assert set(catalog(language)) == keys, language
    assert {"en", "zh", "es", "ar", "ru", "ja"} <= set(UI_LANGUAGES)
    assert {p.stem for p in CATALOG_DIR.glob("*.json")} == set(UI_LANGUAGES)


@pytest.mark.parametrize(
    ("lang", "direction", "button"),
    [
        ("en", "ltr", "Add to cart"),
        ("zh", "ltr", "加入购物车"),
        ("es", "ltr", "Añadir al carrito"),
        ("ar", "rtl", "أضف إلى السلة"),
        ("ru", "ltr", "В корзину"),
        ("ja", "ltr", "カートに入れる"),
    ],
)
def test_search_page_in_each_language(client, lang, direction, button):
    response = client.get(f"/search?q=headphones&lang={lang}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<html lang="{lang}" dir="{direction}">' in html
    assert button in html and catalog(lang)["buy_now"] in html
    assert 'id="results"' in html and 'data-impression-id="' in html
    assert html.count('class="lang-badge"') >= 5  # every card says which language the product is in
    assert '<script src="/static/shop.js" defer></script>' in html and "<script>" not in html  # no inline JS


def test_language_choice_is_remembered_in_a_cookie(client):
    client.get("/?lang=ja")
    assert client.get_cookie("sr_lang").value == "ja"
    html = client.get("/search?q=laptop").get_data(as_text=True)  # no ?lang= this time
    assert '<html lang="ja"' in html


def test_accept_language_picks_the_ui_language_for_new_visitors(shop_app):
    fresh = shop_app.test_client()
    html = fresh.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="ru"' in html and fresh.get_cookie("sr_vid") is not None


def test_prices_follow_the_shoppers_locale(client):
    from decimal import Decimal

    from babel.numbers import format_currency

    item = client.get("/api/search?q=Sony%20headphones&limit=1").get_json()["results"][0]
    amount = Decimal(str(item["price"]))
    for lang, locale in (("en", "en_US"), ("es", "es_ES"), ("ja", "ja_JP")):
        html = client.get(f"/product/{item['sku']}?lang={lang}").get_data(as_text=True)
        assert format_currency(amount, item["currency"], locale=locale) in html, (lang, item)
    assert format_currency(amount, item["currency"], locale="es_ES") != format_currency(
        amount, item["currency"], locale="en_US"
    )


def test_queries_are_escaped_not_executed(client):
    html = client.get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_empty_and_too_long_queries_show_a_message(client):
    assert "Type what you are looking for." in client.get("/search?q=%20&lang=en").get_data(as_text=True)
    response = client.get("/search?lang=en&q=" + "x" * 1001)
    assert response.status_code == 400 and "too long" in response.get_data(as_text=True)


def test_product_category_and_placeholder_pages(client):
    search = client.get("/api/search?q=headphones&limit=1").get_json()["results"][0]
    page = client.get(f"/product/{search['sku']}?imp=0b5c7c1e-aaaa-bbbb-cccc-123456789012&pos=1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-impression="0b5c7c1e-aaaa-bbbb-cccc-123456789012"' in html
    assert client.get(f"/c/{search['category']}").status_code == 200
    svg = client.get(f"/placeholder/{search['category']}.svg")
    assert svg.mimetype == "image/svg+xml" and svg.get_data(as_text=True).startswith("<svg")
    assert client.get("/product/NO-SUCH-SKU").status_code == 404
    assert client.get("/placeholder/..%2Fetc.svg").status_code == 404


def test_home_page_links_categories_and_example_queries(client):
    html = client.get("/?lang=zh").get_data(as_text=True)
    assert "无线降噪耳机" in html and re.search(r'href="/c/[a-z0-9-]+"', html)


def test_rank_notice_names_the_scorer_that_really_ranked(client, shop_db_url, tiny_scorer_fp32):
    """Never pretend: the e5 fallback is not 'our AI reranker'."""
    from reranking import Reranker
    from reranking.dispatch import InProcessDispatcher
    from tests.shop_support import build_test_services
    from webapp import create_app

    english = catalog("en")
    html = client.get("/search?q=headphones&lang=en").get_data(as_text=True)
    assert english["reranked_fallback_notice"] in html and english["reranked_notice"] not in html
    assert 'class="pill ai"' not in html

    cross_encoder = InProcessDispatcher({"default": Reranker(tiny_scorer_fp32)}, "default")
    services = build_test_services(shop_db_url, dispatcher=cross_encoder)
    try:
        html = create_app(services=services).test_client().get("/search?q=headphones&lang=en").get_data(as_text=True)
    finally:
        services.close()
    assert english["reranked_notice"] in html and english["reranked_fallback_notice"] not in html
