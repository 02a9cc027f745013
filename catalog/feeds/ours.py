"""Our own JSONL and CSV catalogs, with the aliases other tools' exports use (``lang``, ``id``, ``name``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from catalog.feeds.rows import FeedError, FeedRow, decoded_lines, table_rows

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
            except RecursionError:  # 100,000 nested brackets: the parser's recursion, not a server fault
                yield FeedRow(number, problems=["invalid JSON: nested too deeply"])
                continue
            if not isinstance(value, dict):
                yield FeedRow(number, problems=["expected a JSON object"])
                continue
            yield FeedRow(number, canonical(value))
    except FeedError as exc:
        yield FeedRow(exc.line, problems=[str(exc)])


def _column(name: str) -> str:
    name = name.strip()
    return ALIASES.get(name.lower(), name)


def csv_rows(path: Path, delta: bool = False) -> Iterator[FeedRow]:
    return table_rows(path, ("sku",) if delta else CSV_REQUIRED, column=_column)
