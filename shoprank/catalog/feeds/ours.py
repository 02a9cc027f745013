"""Our own JSONL and CSV catalogs, with the aliases other tools' exports use (``lang``, ``id``, ``name``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shoprank.catalog.feeds import FeedError, FeedRow, blank_to_none, decoded_lines

ALIASES = {
    "id": "sku",
    "product_id": "sku",
    "name": "title",
    "product_name": "title",
    "lang": "language",
    "locale": "language",
    "body": "description",
    "body_html": "description",
    "vendor": "brand",
    "manufacturer": "brand",
    "quantity": "stock",
    "qty": "stock",
    "inventory": "stock",
    "image_url": "image",
    "image_link": "image",
    "product_type": "category",
    "category_path": "category",
}
#: Columns a CSV must have (after aliases); language and currency may come from --language / the price text.
CSV_REQUIRED = ("sku", "title", "price", "category")


def canonical(row: Mapping[str, Any]) -> dict[str, Any]:
    """Rename aliases to our field names; an alias whose field is also present stays as it is (an attribute)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = ALIASES.get(str(key).strip().lower(), str(key).strip())
        if name in out or (name != key and name in row):
            out[str(key)] = value
        else:
            out[name] = value
    return out


def jsonl_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    try:
        for number, line in enumerate(decoded_lines(path), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield FeedRow(number, problems=[f"invalid JSON ({exc.msg} at column {exc.colno})"])
                continue
            if not isinstance(value, dict):
                yield FeedRow(number, problems=["expected a JSON object"])
                continue
            yield FeedRow(number, canonical(value))
    except FeedError as exc:
        yield FeedRow(exc.line, problems=[str(exc)])


def csv_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    try:
        reader = csv.reader(decoded_lines(path))
        header = list(canonical(dict.fromkeys(name.strip() for name in next(reader, []))))
        missing = [name for name in (("sku",) if delta else CSV_REQUIRED) if name not in header]
        if missing:
            yield FeedRow(1, problems=[f"header: missing column(s) {', '.join(missing)}"])
            return
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                yield FeedRow(reader.line_num, problems=[f"{len(cells) - len(header)} more cell(s) than the header"])
                continue
            yield FeedRow(reader.line_num, blank_to_none(dict(zip(header, cells, strict=False))))
    except FeedError as exc:
        yield FeedRow(exc.line, problems=[str(exc)])
