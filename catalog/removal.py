"""Deleting products so that running searches stop showing them within seconds.

A tombstone per deleted product lets every web process's index delta hide the product's row in the
memory-mapped index version it searches, until the next build leaves the product out.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.models import Product, ProductTombstone
from shoprank.db import utcnow


def delete_products(session: Session, skus: Sequence[str]) -> list[str]:
    """Delete these products (unknown skus are ignored); returns the skus that were deleted."""
    found = session.execute(select(Product.id, Product.sku).where(Product.sku.in_(list(skus)))).all()
    if not found:
        return []
    now = utcnow()
    for product_id, sku in found:
        session.merge(ProductTombstone(product_id=product_id, sku=sku, deleted_at=now))
    session.execute(delete(Product).where(Product.id.in_([pid for pid, _ in found])))
    return [sku for _, sku in found]
