"""Feeds that say nothing about stock: products import as *availability unknown* (stock NULL), with one warning
per import, and every view treats them as buyable without a stock badge (DESIGN.md §8). Explicit counts and
availability values keep their meaning: 0 / "out of stock" is still out of stock everywhere."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from catalog.importer import ImportOptions, import_file
from catalog.models import ImportJob, Product
from catalog.stock import UNKNOWN_STOCK, availability, is_out_of_stock, stock_column
from search.filters import FxRates, SearchFilters
from search.index import CatalogItem
from search.service import SearchHit
from search.shop_search import OUT_OF_STOCK_DEMOTION, _demote_out_of_stock, _sorted, facets_of
from shopctl.cli import cli
from shoprank import migrate
from shoprank.db import Database
from tests.shop_support import MINI_CATALOG, build_test_services, prepare_shop_database

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
ROWS = [json.loads(line) for line in MINI_CATALOG.read_text(encoding="utf-8").splitlines()]
#: The one product of the stock-less shop whose feed row does say "0 in stock".
SOLD_OUT = "HP-BOSE-QCU"
UNKNOWN_WARNING = re.compile(r"^(\d+) product\(s\) had no stock information .*availability unknown")


def _stockless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "stock"} for row in rows]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict]) -> Path:
    """A CSV with a stock column whose cells are empty where the row gives no stock."""
    names = list(dict.fromkeys([*(k for row in rows for k in row), "stock"]))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if k == "attributes" else v for k, v in row.items()})
    return path


def _unknown_warnings(warnings: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(UNKNOWN_WARNING.match, warnings) if m]


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'stock.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def _stored(db) -> dict[str, Product]:
    with db.session() as session:
        found = {p.sku: p for p in session.scalars(select(Product))}
        session.expunge_all()
    return found


def _jobs_warnings(db) -> list[list[str]]:
    with db.session() as session:
        return [list(job.warnings) for job in session.scalars(select(ImportJob))]


# --- import -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [_write_jsonl, _write_csv])
def test_a_stockless_feed_imports_as_unknown_with_one_warning(db, tmp_path, writer):
    rows = _stockless(ROWS[:8])
    rows[1]["stock"] = 0  # an explicit count keeps its meaning
    rows[2]["availability"] = "in stock"
    rows[3]["availability"] = "out of stock"
    rows[4]["stock"] = ""  # an empty cell says nothing either
    path = writer(tmp_path / ("feed.jsonl" if writer is _write_jsonl else "feed.csv"), rows)
    report = import_file(db, path, None)
    assert report.inserted == 8
    stored = _stored(db)
    assert stored[rows[1]["sku"]].stock == 0
    assert stored[rows[2]["sku"]].stock == 1
    assert stored[rows[3]["sku"]].stock == 0
    unknown = [r["sku"] for i, r in enumerate(rows) if i not in (1, 2, 3)]
    assert all(stored[sku].stock is None for sku in unknown)
    assert _unknown_warnings(report.warnings) == [5]  # one warning for the file, not one per row
    assert [_unknown_warnings(w) for w in _jobs_warnings(db)] == [[5]]  # and the import job's report says it too


def test_a_feed_with_stock_everywhere_has_no_such_warning(db, tmp_path):
    report = import_file(db, _write_jsonl(tmp_path / "full.jsonl", ROWS[:4]), None)
    assert _unknown_warnings(report.warnings) == []
    assert all(p.stock is not None for p in _stored(db).values())


def test_a_merchant_center_tsv_without_availability(db, tmp_path):
    lines = (FEEDS / "merchant.tsv").read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("availability")
    cut = ["\t".join(c for i, c in enumerate(line.split("\t")) if i != column) for line in lines]
    path = tmp_path / "no_availability.tsv"
    path.write_text("\n".join(cut) + "\n", encoding="utf-8")
    report = import_file(db, path, None, options=ImportOptions(language="en"))
    assert report.inserted == 3
    assert {p.stock for p in _stored(db).values()} == {None}
    assert _unknown_warnings(report.warnings) == [3]


def test_the_cli_prints_the_warning_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"SHOPRANK_DATABASE_URL": url}
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    path = _write_jsonl(tmp_path / "feed.jsonl", _stockless(ROWS[:3]))
    result = runner.invoke(cli, ["catalog", "import", str(path), "--no-embed"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count("no stock information") == 1
    assert "3 product(s) had no stock information" in result.output


# --- the rules ------------------------------------------------------------------------------------------------------


def _item(n: int, stock: int | None, price: str = "1") -> CatalogItem:
    return CatalogItem(n, f"S{n}", "t", "d", Decimal(price), "USD", "c", "en", None, None, stock, {}, "p")


def _hit(rank: int, stock: int | None, price: str = "1") -> SearchHit:
    return SearchHit(_item(rank, stock, price), rank, 0.5, rank, 0.5, 0.5, {})


def test_unknown_stock_is_buyable_everywhere_the_rules_decide():
    assert (is_out_of_stock(None), is_out_of_stock(0), is_out_of_stock(3)) == (False, True, False)
    assert (stock_column(None), stock_column(0), stock_column(7)) == (UNKNOWN_STOCK, 0, 7)
    assert (availability(None, {}), availability(0, {}), availability(2, {})) == (None, "out of stock", "in stock")
    assert availability(1, {"availability": "preorder"}) == "preorder"
    assert availability(0, {"availability": "in stock"}) == "out of stock"  # a later count of 0 wins

    hits = [_hit(1, None)] + [_hit(rank, 5) for rank in range(2, 20)]
    assert [h.rank for h in _demote_out_of_stock(hits)][0] == 1  # not demoted
    sold_out = [_hit(1, 0)] + [_hit(rank, None) for rank in range(2, 20)]
    assert [h.rank for h in _demote_out_of_stock(sold_out)].index(1) == OUT_OF_STOCK_DEMOTION

    by_price = _sorted([_hit(1, 0, "1"), _hit(2, None, "9"), _hit(3, 4, "5")], "price_asc", FxRates())
    assert [h.rank for h in by_price] == [3, 2, 1]  # unknown sorts with the buyable ones, sold out last
    assert facets_of([_hit(1, None), _hit(2, 0), _hit(3, 2)], "USD", FxRates()).in_stock == 2

    fx = FxRates()
    only = SearchFilters.of(in_stock=True)
    keeps = [only.matches(category="c", brand=None, language="en", stock=s, reference_price=1.0, fx=fx)
             for s in (None, 0, 1)]  # fmt: skip
    assert keeps == [True, False, True]


# --- a shop whose feed has no stock: pages and APIs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stockless_shop(tmp_path_factory):
    """The mini catalog without stock (one product says 0), imported, embedded and indexed, as a test client."""
    from webapp import create_app

    directory = tmp_path_factory.mktemp("stockless")
    rows = _stockless(ROWS)
    next(r for r in rows if r["sku"] == SOLD_OUT)["stock"] = 0
    feed = _write_jsonl(directory / "feed.jsonl", rows)
    url = f"sqlite:///{directory / 'shop.db'}"
    prepare_shop_database(url, feed)
    services = build_test_services(url)
    yield services, create_app(services=services).test_client()
    services.close()


@pytest.fixture
def shop(stockless_shop):
    return stockless_shop[1]


def _cards(html: str) -> dict[str, str]:
    """sku → the HTML of its card on a results page."""
    parts = re.split(r'(?=<article class="card")', html)
    return {re.search(r'data-sku="([^"]+)"', p).group(1): p for p in parts if p.startswith('<article class="card"')}


def test_search_page_shows_no_out_of_stock_and_buttons_are_enabled(shop):
    response = shop.get("/search?q=wireless+headphones")
    assert response.status_code == 200
    cards = _cards(response.get_data(as_text=True))
    unknown = {sku: html for sku, html in cards.items() if sku != SOLD_OUT}
    assert len(unknown) >= 3
    for sku, html in unknown.items():
        assert "Out of stock" not in html and 'class="stock' not in html, sku  # no badge at all
        assert "disabled" not in html, sku
        assert html.count('class="btn btn-') == 2


def test_explicit_zero_stock_still_shows_out_of_stock(shop):
    html = shop.get("/search?q=Bose+QuietComfort").get_data(as_text=True)
    card = _cards(html)[SOLD_OUT]
    assert "Out of stock" in card and card.count("disabled") == 2
    page = shop.get(f"/product/{SOLD_OUT}").get_data(as_text=True)
    assert "Out of stock" in page and "disabled" in page


def test_product_page_of_an_unknown_stock_product(shop):
    page = shop.get("/product/HP-SONY-XM5").get_data(as_text=True)
    assert "Out of stock" not in page and 'class="stock' not in page and " disabled" not in page


def test_in_stock_only_keeps_unknown_products(shop):
    everything = shop.get("/api/search?q=headphones&per_page=100").get_json()
    in_stock = shop.get("/api/search?q=headphones&per_page=100&in_stock=true").get_json()
    assert everything["total"] > 1 and in_stock["total"] > 0
    assert all(r["stock"] is None and r["availability"] is None for r in in_stock["results"])
    assert SOLD_OUT not in {r["sku"] for r in in_stock["results"]}
    zeros = sum(1 for r in everything["results"] if r["stock"] == 0)
    assert everything["facets"]["in_stock"]["count"] == everything["total"] - zeros
    page = shop.get("/search?q=headphones&in_stock=true").get_data(as_text=True)
    assert _cards(page)


def test_api_results_say_stock_null_and_availability_null(shop):
    body = shop.get("/api/search?q=Bose+QuietComfort&per_page=100").get_json()
    by_sku = {r["sku"]: r for r in body["results"]}
    assert (by_sku[SOLD_OUT]["stock"], by_sku[SOLD_OUT]["availability"]) == (0, "out of stock")
    others = [r for sku, r in by_sku.items() if sku != SOLD_OUT]
    assert others and all(r["stock"] is None and r["availability"] is None for r in others)


def test_browse_home_and_autocomplete_list_unknown_stock_products(shop):
    home = shop.get("/").get_data(as_text=True)
    assert _cards(home) and "Out of stock" not in home  # featured products are the buyable ones
    listing = shop.get("/api/search?category=headphones&in_stock=true&per_page=100").get_json()
    assert listing["total"] > 0 and SOLD_OUT not in {r["sku"] for r in listing["results"]}
    everything = shop.get("/api/search?category=headphones&per_page=100").get_json()
    assert everything["results"][-1]["sku"] == SOLD_OUT  # browse order: the sold-out product last
    suggestions = shop.get("/api/suggest?q=sony").get_json()["suggestions"]
    assert any(s["kind"] == "product" for s in suggestions)


def test_a_stock_change_after_the_index_build_to_unknown_and_back(stockless_shop):
    services, shop = stockless_shop
    with services.db.session() as session:
        session.execute(update(Product).where(Product.sku == SOLD_OUT).values(stock=None))
    services.index.refresh()
    try:
        listing = shop.get("/api/search?category=headphones&in_stock=true&per_page=100").get_json()
        assert SOLD_OUT in {r["sku"] for r in listing["results"]}  # the delta's override column reads unknown
    finally:
        with services.db.session() as session:
            session.execute(update(Product).where(Product.sku == SOLD_OUT).values(stock=0))
        services.index.refresh()


def test_rank_api_inline_products_without_stock_are_unknown(shop):
    candidates = [
        {"sku": "os-1", "title": "Wireless noise cancelling headphones", "price": 99, "currency": "EUR"},
        {"sku": "os-2", "title": "Wireless headphones, sold out", "stock": 0},
        {"sku": "os-3", "title": "Wireless headphones with case", "stock": 4},
    ]
    response = shop.post("/api/rank", json={"query": "wireless headphones", "candidates": candidates})
    assert response.status_code == 200, response.get_data(as_text=True)
    by_sku = {r["sku"]: r for r in response.get_json()["results"]}
    assert (by_sku["os-1"]["stock"], by_sku["os-1"]["availability"]) == (None, None)
    assert (by_sku["os-2"]["stock"], by_sku["os-2"]["availability"]) == (0, "out of stock")
    assert (by_sku["os-3"]["stock"], by_sku["os-3"]["availability"]) == (4, "in stock")


def test_the_migration_keeps_stored_vectors_and_downgrade_turns_unknown_into_zero(tmp_path):
    """SQLite rebuilds ``products`` to change the column; the cascade must not take the stored vectors along."""
    from sqlalchemy import text

    from tests.shop_support import CountingEmbedder

    url = f"sqlite:///{tmp_path / 'migrate.db'}"
    migrate.upgrade(url)
    db = Database(url)
    rows = _stockless(ROWS[:3])
    rows[0]["stock"] = 7
    import_file(db, _write_jsonl(tmp_path / "feed.jsonl", rows), CountingEmbedder())
    db.dispose()

    def read() -> tuple[int, list]:
        database = Database(url)
        try:
            with database.session() as session:
                vectors = session.execute(text("SELECT count(*) FROM product_embeddings")).scalar_one()
                stock = session.execute(text("SELECT stock FROM products ORDER BY id")).scalars().all()
            return vectors, stock
        finally:
            database.dispose()

    assert read() == (3, [7, None, None])
    migrate.downgrade(url, "0014_variant_rerank_depth")
    assert read() == (3, [7, 0, 0])  # the old schema has no "unknown"
    migrate.upgrade(url)
    assert read() == (3, [7, 0, 0])
