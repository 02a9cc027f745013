"""Browsing without search: featured products and category pages, paged in the database.

Pages read a bounded slice through an index ((category, id), stock, language) instead of walking the
catalog, so a category of 50,000 products costs what a category of 24 does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, or_, select

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
