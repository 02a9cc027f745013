"""Feed parsers: one module per file format, each yielding the same normalised rows.

A parser turns its format's columns into our field names (``sku``, ``title``,
``price`` — possibly ``"19.99 USD"`` —, ``category`` — possibly a display path —, …),
puts the columns it knows but we do not model into ``attributes``, and passes
columns it does not know through under their own names (validation keeps those as
attributes and the importer lists them once as a warning). Every parser streams:
memory does not grow with the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from catalog.feeds import merchant, ours, shopify
from catalog.feeds.rows import FeedError, FeedRow

__all__ = ["FORMATS", "NEEDS_CURRENCY", "NEEDS_LANGUAGE", "FeedError", "FeedRow", "detect_format", "feed_rows"]

FORMATS = ("jsonl", "csv", "merchant-tsv", "merchant-xml", "shopify")
#: Formats that carry no per-product language (or currency): the file needs ``--language`` (``--currency``).
NEEDS_LANGUAGE = frozenset({"merchant-tsv", "merchant-xml", "shopify"})
NEEDS_CURRENCY = frozenset({"shopify"})


def _first_line(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.readline(65536).decode("utf-8", "replace").removeprefix("\ufeff")


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else from the extension and (for ``.csv``) the header: Shopify has ``Handle``."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".xml", ".rss", ".atom"):
        return "merchant-xml"
    if suffix in (".tsv", ".txt"):
        return "merchant-tsv"
    if suffix == ".csv":
        header = _first_line(path)
        return "shopify" if "Handle" in header and "Variant Price" in header else "csv"
    raise ValueError(f"{path.name}: cannot tell the format from the extension; pass --format ({', '.join(FORMATS)})")


def feed_rows(path: Path, fmt: str, delta: bool = False) -> Iterator[FeedRow]:
    """The rows of ``path`` in format ``fmt``, normalised to our field names.

    ``delta``: a price/stock feed, whose header needs only the product key column.
    """
    return _parser(fmt)(path, delta)


def _parser(fmt: str) -> Callable[[Path, bool], Iterator[FeedRow]]:
    return {
        "jsonl": ours.jsonl_rows,
        "csv": ours.csv_rows,
        "merchant-tsv": merchant.tsv_rows,
        "merchant-xml": merchant.xml_rows,
        "shopify": shopify.csv_rows,
    }[fmt]
