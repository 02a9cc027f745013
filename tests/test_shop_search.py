"""The shopper's search over HTTP (``/api/search``, ``/api/suggest``, ``/search``) and the rules behind it:
price limits from the query, filters, facets, sort, pages, the relevance floor, out-of-stock placement."""

from __future__ import annotations

from decimal import Decimal

import pytest

from search.filters import FxRates
from search.index import CatalogItem
from search.service import SearchHit
from search.shop_search import OUT_OF_STOCK_DEMOTION, _demote_out_of_stock, _nice, _price_buckets
from search.shopper_currency import shopper_currency

FX = FxRates()


def _eur(result: dict) -> float:
    return FX.convert(Decimal(str(result["price"])), result["currency"], "EUR")


def _usd(result: dict) -> float:
    return FX.convert(Decimal(str(result["price"])), result["currency"], "USD")


def test_a_price_limit_in_the_query_filters_on_converted_prices(client):
    body = client.get("/api/search?q=zapatillas+para+correr+por+menos+de+50+euros&lang=es&per_page=100").get_json()
    assert body["results"] and body["total"] == len(body["results"])
    assert all(_eur(r) <= 50.0 + 1e-9 for r in body["results"])
    assert len({r["currency"] for r in body["results"]}) > 1  # conversion decides, not the listed number
    applied = body["applied_filters"]
    assert applied["query_text"] == "zapatillas para correr"
    assert applied["price_from_query"]["text"] == "por menos de 50 euros"
    assert applied["max_price"] == {"amount": 50.0, "currency": "EUR"}
    # the shopper's currency (Spanish page) is euros: listings in other currencies carry an approximate price
    for result in body["results"]:
        converted = result["price_converted"]
        if result["currency"] == "EUR":
            assert converted is None
        else:
            assert converted["currency"] == "EUR" and abs(converted["amount"] - _eur(result)) < 0.01
            assert "€" in converted["display"]


def test_numbers_that_are_not_prices_do_not_filter(client):
    body = client.get("/api/search?q=objetivo+16-50+mm&lang=es").get_json()
    assert body["applied_filters"]["price_from_query"] is None and body["applied_filters"]["max_price"] is None
    assert body["applied_filters"]["query_text"] == "objetivo 16-50 mm"


def test_pages_are_disjoint_and_total_is_the_same(client):
    first = client.get("/api/search?q=headphones&per_page=5&page=1").get_json()
    second = client.get("/api/search?q=headphones&per_page=5&page=2").get_json()
    assert first["total"] == second["total"] > 10
    assert (first["page"], first["per_page"], second["page"]) == (1, 5, 2)
    assert [r["rank"] for r in first["results"]] == [1, 2, 3, 4, 5]
    assert [r["rank"] for r in second["results"]] == [6, 7, 8, 9, 10]
    assert not {r["sku"] for r in first["results"]} & {r["sku"] for r in second["results"]}
    beyond = client.get(f"/api/search?q=headphones&per_page=5&page={first['total'] // 5 + 2}").get_json()
    assert beyond["results"] == [] and beyond["total"] == first["total"]


def test_limit_still_sets_the_page_size(client):
    body = client.get("/api/search?q=headphones&limit=3").get_json()
    assert len(body["results"]) == 3 and body["per_page"] == 3


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
def test_price_sorts_compare_converted_prices(client, sort):
    body = client.get(f"/api/search?q=headphones&sort={sort}&per_page=100").get_json()
    stock = [r["stock"] > 0 for r in body["results"]]
    assert stock == sorted(stock, reverse=True) and not all(stock)  # what cannot be bought comes last
    prices = [_usd(r) for r in body["results"] if r["stock"] > 0]
    assert len(prices) > 5 and len({r["currency"] for r in body["results"]}) > 1
    assert prices == sorted(prices, reverse=sort == "price_desc")
    assert body["sort"] == sort


def test_price_range_parameters_in_a_currency(client):
    body = client.get("/api/search?q=headphones&min_price=5000&max_price=20000&currency=JPY&per_page=100").get_json()
    assert body["results"]
    for result in body["results"]:
        assert 5000 - 1e-6 <= FX.convert(Decimal(str(result["price"])), result["currency"], "JPY") <= 20000 + 1e-6
    assert body["applied_filters"]["min_price"] == {"amount": 5000.0, "currency": "JPY"}
    assert body["facets"]["price"]["currency"] == "JPY"


def test_category_brand_language_and_stock_filters_with_facets(client):
    everything = client.get("/api/search?q=headphones&per_page=100").get_json()
    facets = everything["facets"]
    assert sum(v["count"] for v in facets["category"]) == everything["total"]
    assert {"value", "label", "count"} <= set(facets["category"][0])
    brand = facets["brand"][0]["value"]
    by_brand = client.get(f"/api/search?q=headphones&brand={brand.lower()}&per_page=100").get_json()
    assert by_brand["results"] and {r["brand"].casefold() for r in by_brand["results"]} == {brand.casefold()}
    assert by_brand["facets"]["brand"] == [{"value": brand, "label": brand, "count": by_brand["total"]}]

    category = facets["category"][0]["value"]
    in_category = client.get(f"/api/search?q=headphones&category={category}&in_stock=true&per_page=100").get_json()
    assert in_category["results"] and all(r["category"] == category for r in in_category["results"])
    assert all(r["stock"] > 0 for r in in_category["results"])
    assert in_category["applied_filters"]["in_stock"] is True

    language = client.get("/api/search?q=headphones&language_of_listing=ja,zh&per_page=100").get_json()
    assert language["results"] and {r["language"] for r in language["results"]} <= {"ja", "zh"}


def test_localised_facet_labels(client):
    body = client.get("/api/search?q=auriculares&lang=es").get_json()
    labels = {v["value"]: v["label"] for v in body["facets"]["category"]}
    assert labels["headphones-audio"] == "Auriculares y audio"


def test_browse_by_filters_without_words(client):
    body = client.get("/api/search?category=coffee&per_page=5").get_json()
    assert body["total"] > 5 and len(body["results"]) == 5
    assert all(r["category"] == "coffee" for r in body["results"])
    assert client.get("/api/search?q=").status_code == 400  # nothing at all is still an empty query


def test_a_nonsense_query_matches_nothing(client):
    body = client.get("/api/search?q=xyzzyqwerty").get_json()
    assert body["total"] == 0 and body["results"] == []
    real = client.get("/api/search?q=wireless+headphones").get_json()
    assert 0 < real["total"] < 100  # the unrelated tail is cut too


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("page=0", "invalid_page"),
        ("page=abc", "invalid_page"),
        ("per_page=0", "invalid_per_page"),
        ("per_page=1000", "invalid_per_page"),
        ("limit=-1", "invalid_limit"),
        ("sort=cheapest", "invalid_sort"),
        ("min_price=abc", "invalid_min_price"),
        ("max_price=-5", "invalid_max_price"),
        ("max_price=nan", "invalid_max_price"),
        ("min_price=100&max_price=10", "invalid_price_range"),
        ("currency=XYZ", "invalid_currency"),
        ("currency=euro", "invalid_currency"),
        ("category=../etc", "invalid_category"),
        ("in_stock=maybe", "invalid_in_stock"),
        ("language_of_listing=klingon", "invalid_language_of_listing"),
    ],
)
def test_invalid_parameters_are_400_naming_the_parameter(client, query, code):
    response = client.get(f"/api/search?q=headphones&{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code
    parameter = query.split("=")[0] if code != "invalid_price_range" else "min_price"
    assert parameter in error["message"]


def test_suggest_brands_categories_and_titles_in_the_shoppers_language_first(client):
    body = client.get("/api/suggest?q=son&lang=es").get_json()
    kinds = [s["kind"] for s in body["suggestions"]]
    assert "brand" in kinds and any(s["text"] == "Sony" for s in body["suggestions"])
    products = [s for s in body["suggestions"] if s["kind"] == "product"]
    assert products and products[0]["language"] == "es"  # a Spanish listing before English ones
    assert all(s["url"].startswith("/") for s in body["suggestions"])
    category = client.get("/api/suggest?q=auric&lang=es").get_json()["suggestions"]
    assert {"kind": "category", "value": "headphones-audio"}.items() <= category[0].items()
    assert client.get("/api/suggest?q=son&limit=99").status_code == 400
    assert client.get("/api/suggest?q=").get_json()["suggestions"] == []


def test_suggest_past_searches_the_shop_answered(client, shop_services):
    """Past searches come from the searches the shop answered with results (tests/test_trusted_suggestions.py has
    the rules); what they look like in the suggest API:"""
    from experiments.store.suggestions import AnsweredSearch

    phrase = "wireless earbuds sport"
    with shop_services.db.session() as session:
        session.add_all(
            AnsweredSearch(phrase_key=phrase, language="en", shopper=f"suggest-test-{n}", phrase=phrase)
            for n in range(shop_services.settings.suggest_min_shoppers)
        )
    shop_services.suggester.invalidate()  # the log is read at most once a minute; tests do not wait
    body = client.get("/api/suggest?q=wireless+ear&lang=en").get_json()
    assert body["suggestions"][0] == {
        "kind": "search",
        "text": "wireless earbuds sport",
        "value": "wireless earbuds sport",
        "language": "en",
        "url": "/search?q=wireless+earbuds+sport",
    }


def _hit(rank: int, stock: int) -> SearchHit:
    item = CatalogItem(rank, f"S{rank}", "t", "d", Decimal(1), "USD", "c", "en", None, None, stock, {}, "p")
    return SearchHit(item, rank, 0.5, rank, 0.5, 0.5, {})


def test_out_of_stock_moves_below_in_stock_of_similar_relevance():
    hits = [_hit(1, 0)] + [_hit(rank, 5) for rank in range(2, 30)]
    order = [hit.rank for hit in _demote_out_of_stock(hits)]
    assert order.index(1) == OUT_OF_STOCK_DEMOTION  # below the next ten in-stock products, above the rest
    assert order[:OUT_OF_STOCK_DEMOTION] == list(range(2, 2 + OUT_OF_STOCK_DEMOTION))
    assert [hit.rank for hit in _demote_out_of_stock([_hit(1, 3), _hit(2, 0)])] == [1, 2]


def test_price_buckets_have_round_edges():
    assert [_nice(v) for v in (0.7, 3, 12, 45, 180, 999)] == [1.0, 5.0, 20.0, 50.0, 200.0, 1000.0]
    buckets = _price_buckets([5, 12, 18, 25, 40, 60, 95, 150])
    assert sum(b.count for b in buckets) == 8
    assert buckets[0].low is None and buckets[-1].high is None
    assert all(b.high == nxt.low for b, nxt in zip(buckets, buckets[1:], strict=False))


def test_shopper_currency_from_market_then_language():
    assert shopper_currency("es", None, FX) == "EUR"
    assert shopper_currency("es", "MX", FX) == "MXN"
    assert shopper_currency("ja", None, FX) == "JPY"
    assert shopper_currency("xx", None, FX) == "USD"


def test_search_page_filters_chips_pages_and_converted_prices(client):
    html = client.get("/search?q=zapatillas+por+menos+de+50+euros&lang=es").get_data(as_text=True)
    assert 'data-filter="price_from_query"' in html and "por menos de 50 euros" in html
    assert 'data-currency="EUR"' in html and "≈" in html  # converted prices shown for non-euro listings
    assert 'id="facet-category"' in html and "Zapatillas de running" in html
    assert 'href="/search?q=zapatillas&amp;lang=es"' in html  # the chip's remove link keeps only the words

    html = client.get("/search?q=headphones&lang=en&per_page=4").get_data(as_text=True)
    assert 'class="pager"' in html and "page=2" in html and 'aria-current="page"' in html


def test_search_page_says_nothing_was_found_and_suggests(client):
    response = client.get("/search?q=xyzzyqwerty&lang=de")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="no-results"' in html
    assert "Kopfhörer &amp; Audio" in html  # suggested categories, in the page's language
    assert "<article" not in html


def test_search_page_bad_parameter_is_400_naming_it(client):
    response = client.get("/search?q=headphones&sort=cheapest&lang=en")
    assert response.status_code == 400 and "sort must be one of" in response.get_data(as_text=True)


def test_product_page_attribute_labels_are_translated(client):
    html = client.get("/product/AUD-HP-0001?lang=es").get_data(as_text=True)
    assert "Cancelación de ruido" in html and "Conectividad" in html
