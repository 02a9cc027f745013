"""The deals listing (``catalog.browse.deals``): in-stock products whose feed gives a regular price above the price,
biggest saving first; everything else (no regular price, not cheaper, out of stock) is not a deal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.browse import deals
from catalog.models import Product
from shoprank import migrate
from shoprank.db import Database


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'deals.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def _product(sku: str, price: str, stock: int = 5, **attributes: object) -> Product:
    return Product(sku=sku, title=sku, description="", price=Decimal(price), currency="EUR", category="shoes",
                   language="en", brand=None, image=None, stock=stock, attributes=attributes)  # fmt: skip


def test_deals_are_discounted_in_stock_products_biggest_saving_first(db):
    with db.session() as session:
        session.add_all([
            _product("HALF", "50.00", regular_price="100.00 EUR"),
            _product("TENTH", "90", compare_at_price=100),
            _product("COMMA", "30", list_price="40,00"),
            _product("NOT-CHEAPER", "100", regular_price="100"),
            _product("SOLD-OUT", "10", stock=0, regular_price="100"),
            _product("PLAIN", "10", color="red"),
            _product("GARBAGE", "10", regular_price="call us"),
        ])  # fmt: skip
    found = deals(db, 10, lambda product: product.sku)
    assert found == [("HALF", 50), ("COMMA", 25), ("TENTH", 10)]
    assert deals(db, 1, lambda product: product.sku) == [("HALF", 50)]


def test_the_deals_page_says_when_there_are_none(client):
    html = client.get("/deals?lang=de").get_data(as_text=True)  # the test catalog gives no regular prices
    assert "<h1>Angebote</h1>" in html and 'id="no-deals"' in html and "Gerade sind keine Produkte reduziert." in html
    assert 'href="/deals"' in html and 'href="/help"' in html  # header links to real pages
