"""Price/stock-only (delta) feeds: change what a product costs and whether it is in stock, nothing else.

A delta row names a product by sku and carries any of price (``"19.99 USD"``
accepted), currency, stock, availability. Title, description, category and the
stored vector are never touched, so a delta feed never causes re-embedding, however
large. Other columns are ignored (listed once as a warning); skus not in the catalog
are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog.models import Product
from catalog.validation import (
    AVAILABILITY,
    RowProblems,
    availability_field,
    known_currencies,
    price_field,
    split_price,
    stock_field,
    text_field,
)

DELTA_FIELDS = ("sku", "price", "currency", "stock", AVAILABILITY)


@dataclass(frozen=True, slots=True)
class DeltaRecord:
    sku: str
    price: Decimal | None = None
    currency: str | None = None
    stock: int | None = None
    availability: str | None = None


def ignored_fields(raw: Mapping[str, Any]) -> list[str]:
    return sorted(str(k) for k, v in raw.items() if k not in DELTA_FIELDS and k != "attributes" and v is not None)


def validate_delta(raw: Mapping[str, Any]) -> DeltaRecord:
    """A ``DeltaRecord`` or ``RowProblems``; a row must change at least one of price, stock, availability."""
    problems: list[str] = []
    sku = text_field(raw.get("sku"), "sku", problems, max_len=64, required=True)
    price = currency = None
    if raw.get("price") not in (None, ""):
        amount, currency = split_price(raw.get("price"))
        price = price_field(amount, problems)
    currency = text_field(raw.get("currency"), "currency", problems, max_len=3) or currency
    if currency and currency not in known_currencies():
        problems.append(f"currency: {currency!r} is not an ISO 4217 code (e.g. USD, EUR, CNY)")
    stock = stock_field(raw.get("stock"), problems) if raw.get("stock") not in (None, "") else None
    in_stock = availability_field(raw.get(AVAILABILITY), problems)
    availability = str(raw[AVAILABILITY]).strip().casefold() if in_stock is not None else None
    if stock is None and in_stock is not None:
        stock = in_stock
    if price is None and stock is None and not problems:
        problems.append("a delta row needs at least one of price, stock, availability")
    if problems:
        raise RowProblems(problems)
    assert sku is not None
    return DeltaRecord(sku, price, currency, stock, availability)


def write_deltas(session: Session, records: Sequence[DeltaRecord], now: datetime) -> tuple[int, int, list[str]]:
    """Apply ``records``; returns (updated, unchanged, skus not in the catalog). The caller commits."""
    stored = {
        row.sku: row
        for row in session.execute(
            select(Product.id, Product.sku, Product.price, Product.currency, Product.stock, Product.attributes).where(
                Product.sku.in_([r.sku for r in records])
            )
        )
    }
    changes: list[dict[str, Any]] = []
    unknown: list[str] = []
    unchanged = 0
    for record in records:
        current = stored.get(record.sku)
        if current is None:
            unknown.append(record.sku)
            continue
        values: dict[str, Any] = {}
        if record.price is not None and Decimal(current.price) != record.price:
            values["price"] = record.price
        if record.currency is not None and current.currency != record.currency:
            values["currency"] = record.currency
        if record.stock is not None and current.stock != record.stock:
            values["stock"] = record.stock
        attributes = dict(current.attributes or {})
        if record.availability is not None and attributes.get(AVAILABILITY) != record.availability:
            values["attributes"] = {**attributes, AVAILABILITY: record.availability}
        if values:
            changes.append({"id": current.id, **values, "updated_at": now})
        else:
            unchanged += 1
    if changes:
        session.execute(update(Product), changes)
    return len(changes), unchanged, unknown
