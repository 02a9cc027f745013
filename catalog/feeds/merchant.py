"""Google Merchant Center product data: the TSV upload and the RSS 2.0 / Atom XML feed with ``g:`` fields.

Merchant Center names fields once for both encodings (``id``, ``title``, ``price`` as
``"19.99 USD"``, ``product_type`` as ``A > B > C``, …), so one mapping serves both.
The XML is read with ``iterparse`` and each item is cleared once read, so a feed of a
million items parses in constant memory.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from catalog.feeds.rows import FeedRow, table_rows

GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
#: Merchant Center field → our field.
FIELD_MAP = {
    "id": "sku",
    "title": "title",
    "description": "description",
    "image_link": "image",
    "brand": "brand",
    "availability": "availability",
    "quantity": "stock",
    "content_language": "language",
}
#: Fields we know and keep as attributes (no warning).
ATTRIBUTE_FIELDS = (
    "link",
    "gtin",
    "mpn",
    "item_group_id",
    "color",
    "size",
    "gender",
    "age_group",
    "condition",
    "material",
    "pattern",
    "google_product_category",
)
_NUMERIC = re.compile(r"^\d+$")


def normalise(item: Mapping[str, Any]) -> dict[str, Any]:
    """One Merchant Center item (field → text) as our fields."""
    row: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, value in item.items():
        if value is None:
            continue
        if name in FIELD_MAP:
            row[FIELD_MAP[name]] = value
        elif name in ATTRIBUTE_FIELDS:
            attributes[name] = value
        elif name not in ("price", "sale_price", "product_type"):
            row[name] = value  # unknown: validation keeps it as an attribute, the importer warns once
    price, sale = item.get("price"), item.get("sale_price")
    row["price"] = sale or price
    if sale and price:
        attributes["regular_price"] = price
    row["category"] = _category(item)
    row["attributes"] = attributes
    return row


def _category(item: Mapping[str, Any]) -> str | None:
    """The merchant's own ``product_type`` path; else Google's category (a path, or a numeric id)."""
    product_type: str | None = item.get("product_type")
    if product_type:
        return product_type.split(",")[0].strip() if ">" not in product_type else product_type
    google = (item.get("google_product_category") or "").strip()
    if _NUMERIC.match(google):
        return f"Google category {google}"
    return google or None


def _field_name(column: str) -> str:
    return column.strip().removeprefix("g:").strip().lower().replace(" ", "_")


def tsv_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    for row in table_rows(path, ("id",) if delta else ("id", "title", "price"), "\t", _field_name):
        yield row if row.fields is None else FeedRow(row.line, normalise(row.fields))


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _item_fields(element: ET.Element) -> dict[str, Any]:
    """``g:`` children win over the RSS/Atom ones (``title``, ``description``/``summary``, ``link``)."""
    plain: dict[str, Any] = {}
    google: dict[str, Any] = {}
    for child in element:
        namespace, name = _local(child.tag)
        text = (child.text or "").strip() or None
        if namespace == GOOGLE_NS:
            google.setdefault(name.lower(), text)
        elif name == "link" and child.get("href"):  # Atom
            plain.setdefault("link", child.get("href"))
        elif name in ("title", "description", "link", "summary"):
            plain.setdefault("description" if name == "summary" else name, text)
    return {**plain, **{k: v for k, v in google.items() if v is not None or k not in plain}}


def xml_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    """Items of an RSS 2.0 (``<item>``) or Atom (``<entry>``) feed; ``line`` is the item's number."""
    number = 0
    root: ET.Element | None = None
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):
            if root is None and event == "start":
                root = element
            if event != "end" or _local(element.tag)[1] not in ("item", "entry"):
                continue
            number += 1
            yield FeedRow(number, normalise(_item_fields(element)))
            if root is not None:
                _forget_items(root)
    except ET.ParseError as exc:
        yield FeedRow(number + 1, problems=[f"XML is not well-formed: {exc}"])
        return
    if number == 0 and root is not None and _local(root.tag)[1] not in ("rss", "feed"):
        yield FeedRow(1, problems=[f"not an RSS or Atom feed (root element <{_local(root.tag)[1]}>)"])


def _forget_items(root: ET.Element) -> None:
    """Drop items already read (``<feed>`` holds entries, ``<rss><channel>`` items): one item in memory at a time."""
    for parent in (root, *root):
        for child in [c for c in parent if _local(c.tag)[1] in ("item", "entry")]:
            parent.remove(child)
