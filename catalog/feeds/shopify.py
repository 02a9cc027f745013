"""Shopify's product CSV export: one row per variant, grouped under the product's ``Handle``.

The first row of a handle carries the product (Title, Body (HTML), Vendor, Type,
Tags); the rows after it carry only variant fields (options, SKU, price, inventory)
and extra images. Each variant becomes one product: the group's text plus its option
values, with the handle as ``item_group_id``. Only the current handle is held in
memory, so the export streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from catalog.feeds.rows import FeedRow, table_rows

#: Product-level columns, present on a handle's first row only.
GROUP_FIELDS = {"Title": "title", "Body (HTML)": "description", "Vendor": "brand", "Type": "category"}
#: Known columns kept as attributes: the product's (shared by its variants) and each variant's own.
GROUP_ATTRIBUTES = {"Tags": "tags", "Product Category": "google_product_category"}
VARIANT_ATTRIBUTES = {"Variant Barcode": "gtin", "Variant Compare At Price": "regular_price"}
#: Shopify bookkeeping (shipping, tax, SEO, publishing): known, not product data, dropped without a warning.
IGNORED = frozenset(
    {
        "Published",
        "Status",
        "Gift Card",
        "SEO Title",
        "SEO Description",
        "Image Position",
        "Image Alt Text",
        "Variant Grams",
        "Variant Weight Unit",
        "Variant Inventory Tracker",
        "Variant Inventory Policy",
        "Variant Fulfillment Service",
        "Variant Requires Shipping",
        "Variant Taxable",
        "Variant Tax Code",
        "Cost per item",
    }
)
VARIANT_FIELDS = {"Variant SKU", "Variant Price", "Variant Inventory Qty", "Image Src", "Variant Image"}
OPTIONS = (("Option1 Name", "Option1 Value"), ("Option2 Name", "Option2 Value"), ("Option3 Name", "Option3 Value"))
_OPTION_COLUMNS = {column for pair in OPTIONS for column in pair}
REQUIRED = ("Handle", "Title", "Variant Price")
KNOWN = {"Handle", *GROUP_FIELDS, *GROUP_ATTRIBUTES, *VARIANT_ATTRIBUTES, *IGNORED, *VARIANT_FIELDS, *_OPTION_COLUMNS}


class _Group:
    """The product a handle's first row described, and what its variants inherit."""

    def __init__(self, handle: str, row: dict[str, Any]) -> None:
        self.handle = handle
        self.fields = {ours: row.get(theirs) for theirs, ours in GROUP_FIELDS.items()}
        if not self.fields["category"]:
            self.fields["category"] = row.get("Product Category")
        self.image = row.get("Image Src")
        self.option_names = [row.get(name) for name, _ in OPTIONS]
        self.attributes = {ours: row[theirs] for theirs, ours in GROUP_ATTRIBUTES.items() if row.get(theirs)}
        self.variants = 0


def _variant(group: _Group, row: dict[str, Any]) -> dict[str, Any]:
    group.variants += 1
    values = [row.get(value) for _, value in OPTIONS]
    named = [(n or f"Option{i + 1}", v) for i, (n, v) in enumerate(zip(group.option_names, values, strict=True)) if v]
    shown = [v for _, v in named if v != "Default Title"]
    title = group.fields["title"] or ""
    attributes = {**group.attributes, "item_group_id": group.handle}
    attributes.update({name: value for name, value in named if value != "Default Title"})
    attributes.update({ours: row[theirs] for theirs, ours in VARIANT_ATTRIBUTES.items() if row.get(theirs)})
    stock = row.get("Variant Inventory Qty")
    if isinstance(stock, str) and stock.strip().lstrip("-").isdigit() and int(stock) < 0:
        stock = "0"  # oversold: nothing to sell
    out: dict[str, Any] = {
        **group.fields,
        "sku": row.get("Variant SKU") or f"{group.handle}-{group.variants}",
        "title": f"{title} - {' / '.join(shown)}" if shown and title else title,
        "price": row.get("Variant Price"),
        "stock": stock,
        "image": row.get("Variant Image") or group.image or row.get("Image Src"),
        "attributes": attributes,
    }
    out.update({name: value for name, value in row.items() if name not in KNOWN and value is not None})
    return out


def _is_variant(row: dict[str, Any]) -> bool:
    """Image-only rows (a handle and an image) add a picture, not a product."""
    return bool(row.get("Variant Price") or row.get("Variant SKU") or row.get("Option1 Value"))


def csv_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    group: _Group | None = None
    for parsed in table_rows(path, REQUIRED):
        row = parsed.fields
        if row is None:
            yield parsed
            continue
        handle = (row.get("Handle") or "").strip()
        if not handle:
            yield FeedRow(parsed.line, problems=["Handle: required"])
            continue
        if row.get("Title"):
            group = _Group(handle, row)
        elif group is None or group.handle != handle:
            problem = f"variant of {handle!r} is not right after its product row (the one with a Title)"
            yield FeedRow(parsed.line, problems=[problem])
            continue
        if _is_variant(row):
            yield FeedRow(parsed.line, _variant(group, row))
