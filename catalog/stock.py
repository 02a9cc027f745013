"""What a product's stock means to a shopper: a count, or *unknown* when its feed said nothing about stock.

Many real feeds carry neither a stock count nor an availability (a merchant's own export, a marketplace dump).
Reading that as "0 in stock" would mark the whole shop sold out, so such a product is stored with stock
``None`` (SQL NULL) and treated as *buyable without a stock badge* everywhere: it is kept by "in stock only",
never demoted or sorted as out of stock, and APIs show ``stock: null, availability: null`` (DESIGN.md §8).
Only an explicit count of 0 or an availability such as "out of stock" makes a product unbuyable.

The index's ``stock`` column is int32, so unknown is stored there as ``UNKNOWN_STOCK`` (-1; real counts are
never negative).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Stock of an unknown-availability product in the index's int32 ``stock`` column (counts are ≥ 0).
UNKNOWN_STOCK = -1

#: The availability values an API shows (DESIGN.md §8); ``None`` is unknown.
IN_STOCK, OUT_OF_STOCK, PREORDER, BACKORDER = "in stock", "out of stock", "preorder", "backorder"
_FEED_SPELLINGS = {"preorder": PREORDER, "pre-order": PREORDER, "backorder": BACKORDER}


def is_out_of_stock(stock: int | None) -> bool:
    """True only for a known count of 0 (or less): unknown stock is buyable."""
    return stock is not None and stock <= 0


def stock_column(stock: int | None) -> int:
    """The value the index stores for ``stock``: the count, or ``UNKNOWN_STOCK``."""
    return UNKNOWN_STOCK if stock is None else stock


def buyable_column(stock: np.ndarray) -> np.ndarray:
    """Which rows of an index ``stock`` column can be bought: a positive count or unknown."""
    column = np.asarray(stock)
    mask: np.ndarray = (column > 0) | (column == UNKNOWN_STOCK)
    return mask


def availability(stock: int | None, attributes: Mapping[str, Any]) -> str | None:
    """``in stock`` / ``out of stock`` / ``preorder`` / ``backorder``, or None when unknown.

    It follows the stock the product has now (a count of 0 from a later delta feed wins over an earlier
    "in stock"), naming preorder and backorder when the feed said so for a buyable product.
    """
    if stock is None:
        return None
    if stock <= 0:
        return OUT_OF_STOCK
    said = attributes.get("availability")
    return _FEED_SPELLINGS.get(said.strip().casefold(), IN_STOCK) if isinstance(said, str) else IN_STOCK
