"""Browsing without search: featured products, category pages and deals, paged in the database.

Pages read a bounded slice through an index ((category, id), stock, language) instead of walking the
catalog, so a category of 50,000 products costs what a category of 24 does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from sqlalchemy import String, cast, func, or_, select

from catalog.models import Product
from shoprank.db import Database

T = TypeVar("T")
#: In stock, or stock unknown (NULL: the feed said nothing; buyable, see ``catalog.stock``).
_buyable = or_(Product.stock > 0, Product.stock.is_(None))


def featured(db: Database, language: str, limit: int, build: Callable[[Product], T]) -> list[T]:
    """Buyable products (in stock, or stock unknown), listings in the shopper's language first, then any language
    (newest ids last)."""
    with db.session() as session:
        own = session.scalars(
            select(Product).where(_buyable, Product.language == language).order_by(Product.id).limit(limit)
        ).all()
        rest: list[Any] = []
        if len(own) < limit:
            rest = list(
                session.scalars(
                    select(Product)
                    .where(_buyable, Product.language != language)
                    .order_by(Product.id)
                    .limit(limit - len(own))
                ).all()
            )
        return [build(p) for p in [*own, *rest]]


def category_page(
    db: Database, slug: str, page: int, per_page: int, build: Callable[[Product], T]
) -> tuple[list[T], int]:
    """One page of a category in id order, and the category's size."""
    with db.session() as session:
        total = session.scalar(select(func.count(Product.id)).where(Product.category == slug)) or 0
        rows = session.scalars(
            select(Product)
            .where(Product.category == slug)
            .order_by(Product.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return [build(p) for p in rows], total


#: The feed attributes that say a product is discounted (Google Merchant Center's names; feeds keep them).
_REGULAR_PRICE_KEYS = ("regular_price", "compare_at_price", "list_price")
DEALS_SCAN_LIMIT = 20_000


def _regular_price(attributes: Any) -> Decimal | None:
    if not isinstance(attributes, dict):
        return None
    for key in _REGULAR_PRICE_KEYS:
        raw = attributes.get(key)
        if raw is None:
            continue
        match = re.search(r"\d+(?:[.,]\d+)?", str(raw))
        if match:
            try:
                return Decimal(match.group().replace(",", "."))
            except InvalidOperation:
                return None
    return None


def deals(db: Database, limit: int, build: Callable[[Product], T]) -> list[tuple[T, int]]:
    """In-stock products whose feed gives a regular price above the price, biggest saving (percent) first, with
    that saving. Reads only products whose attributes name a regular price (at most ``DEALS_SCAN_LIMIT``)."""
    with db.session() as session:
        rows = session.execute(
            select(Product.id, Product.price, Product.attributes)
            .where(Product.stock > 0, cast(Product.attributes, String).like("%price%"))
            .order_by(Product.id)
            .limit(DEALS_SCAN_LIMIT)
        ).all()
        savings: list[tuple[int, Any]] = []  # (percent saved, product id)
        for product_id, raw_price, attributes in rows:
            regular = _regular_price(attributes)
            price = Decimal(str(raw_price))
            if regular is not None and regular > price > 0:
                savings.append((int(round((1 - price / regular) * 100)), product_id))
        savings.sort(key=lambda pair: (-pair[0], pair[1]))
        chosen = dict((product_id, percent) for percent, product_id in savings[:limit] if percent > 0)
        if not chosen:
            return []
        products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(chosen)))}
        return [(build(products[pid]), percent) for pid, percent in chosen.items() if pid in products]
