"""Write one chunk of validated products: bulk insert the new, bulk update the changed, name the categories.

One chunk is one transaction's worth of rows (the importer commits after each), so a
chunk is either entirely visible or not at all. Rows are compared with what is stored
first: an unchanged product is not written, and its ``updated_at`` does not move.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from catalog.models import Category, Product
from catalog.validation import ProductRecord
from catalog.vectors import dense_hash

#: Product columns a full feed sets (``dense_hash`` is derived from them).
PRODUCT_COLUMNS = ("title", "description", "price", "currency", "category", "language", "brand", "stock", "image")


@dataclass
class ChunkCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: ChunkCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


def _values(record: ProductRecord, label: tuple[str, str | None] | None) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in PRODUCT_COLUMNS}
    values["attributes"] = dict(record.attributes)
    values["dense_hash"] = dense_hash(with_category_label(values, label))
    return values


def with_category_label(product: dict[str, Any], label: tuple[str, str | None] | None) -> dict[str, Any]:
    """The product's fields plus its category's stored name and path: what ``dense_text`` reads.

    Import and the embedding stage both take the label from the ``categories`` table,
    so the hash stored at import equals the hash of the text later embedded.
    """
    name, path = label or (None, None)
    return {**product, "category_name": name, "category_path": path}


def _differs(stored: Any, values: dict[str, Any]) -> bool:
    for name, value in values.items():
        current = getattr(stored, name)
        if name == "price":
            if Decimal(current) != value:
                return True
        elif name == "attributes":
            if dict(current or {}) != value:
                return True
        elif current != value:
            return True
    return False


def write_products(session: Session, records: Sequence[ProductRecord], now: datetime) -> ChunkCounts:
    """Upsert ``records`` (unique skus) by sku; the caller commits."""
    counts = ChunkCounts()
    labels = name_categories(session, records, now)
    columns = [getattr(Product, name) for name in (*PRODUCT_COLUMNS, "attributes", "dense_hash")]
    stored = {
        row.sku: row
        for row in session.execute(
            select(Product.id, Product.sku, *columns).where(Product.sku.in_([r.sku for r in records]))
        )
    }
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for record in records:
        values = _values(record, labels.get(record.category))
        current = stored.get(record.sku)
        if current is None:
            new.append({"sku": record.sku, **values, "created_at": now, "updated_at": now})
        elif _differs(current, values):
            changed.append({"id": current.id, **values, "updated_at": now})
        else:
            counts.unchanged += 1
    if new:
        session.execute(insert(Product), new)
    if changed:
        session.execute(update(Product), changed)
    counts.inserted, counts.updated = len(new), len(changed)
    return counts


def category_labels(session: Session, slugs: Collection[str]) -> dict[str, tuple[str, str | None]]:
    """slug → (display name, path) for the named ones among ``slugs``."""
    return {
        row.slug: (row.name, row.path)
        for row in session.execute(select(Category.slug, Category.name, Category.path).where(Category.slug.in_(slugs)))
    }


def name_categories(
    session: Session, records: Sequence[ProductRecord], now: datetime
) -> dict[str, tuple[str, str | None]]:
    """Store the display name (and path) of every category the chunk named; return the labels of all its slugs.

    A bare slug names nothing; it keeps whatever name another feed gave it.
    """
    named = {r.category: (r.category_name, r.category_path) for r in records if r.category_name}
    stored = category_labels(session, {r.category for r in records})
    new = [{"slug": s, "name": n, "path": p, "updated_at": now} for s, (n, p) in named.items() if s not in stored]
    renamed = [
        {"slug": s, "name": n, "path": p, "updated_at": now}
        for s, (n, p) in named.items()
        if s in stored and stored[s] != (n, p)
    ]
    if new:
        session.execute(insert(Category), new)
    if renamed:
        session.execute(update(Category), renamed)
    return {**stored, **named}
