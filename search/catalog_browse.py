"""Catalog-wide questions the shop asks besides ranked search: the products matching filters alone (browsing a
category or brand without a query), and the distinct brands and categories (autocomplete).

They are answered by the index's columns (``CatalogIndex.browse``, ``category_counts``, ``brand_counts``), never by
walking the catalog, so they cost the same at a million products.
"""

from __future__ import annotations

from collections import Counter

from search.filters import SearchFilters
from search.index import CatalogIndex, CatalogItem

#: A listing without a query shows at most this many products (sorted, faceted and paged like search results).
BROWSE_DEPTH = 1000


def items_matching(
    index: CatalogIndex, filters: SearchFilters, language: str | None, limit: int = BROWSE_DEPTH
) -> tuple[list[CatalogItem], int]:
    """Products passing ``filters`` (in stock first, listings in ``language`` next, then the most stocked) and
    how many match in all."""
    return index.browse(filters, language, limit)


def category_counts(index: CatalogIndex) -> Counter[str]:
    return Counter(dict(index.category_counts()))


def brand_counts(index: CatalogIndex) -> Counter[str]:
    """Brands as merchants spell them, with their product counts."""
    return Counter(index.brand_counts())
