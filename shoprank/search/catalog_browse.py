"""Catalog-wide questions the shop asks besides ranked search: the products matching filters alone (browsing a
category or brand without a query), and the distinct brands and categories (autocomplete).

These are the only places the shop reads the whole catalog; an index that cannot hold every row in memory
re-implements these three functions over its columns.
"""

from __future__ import annotations

from collections import Counter

from shoprank.search.filters import FxRates, SearchFilters
from shoprank.search.index import CatalogItem, CatalogSnapshot


def items_matching(
    snapshot: CatalogSnapshot, filters: SearchFilters, fx: FxRates, language: str | None
) -> list[CatalogItem]:
    """Every product passing ``filters``: in stock first, listings in ``language`` next, then the most stocked."""
    mask = snapshot.filter_mask(filters, fx)
    matching = [item for item, keep in zip(snapshot.items, mask, strict=True) if keep]
    return sorted(matching, key=lambda i: (i.stock <= 0, i.language != language, -min(i.stock, 50), i.id))


def category_counts(snapshot: CatalogSnapshot) -> Counter[str]:
    return Counter(item.category for item in snapshot.items)


def brand_counts(snapshot: CatalogSnapshot) -> Counter[str]:
    """Brands as merchants spell them (the most frequent spelling per case-folded brand)."""
    spellings: Counter[str] = Counter(
        item.brand.strip() for item in snapshot.items if item.brand and item.brand.strip()
    )
    merged: dict[str, tuple[str, int]] = {}
    for spelling, count in spellings.most_common():
        key = spelling.casefold()
        name, total = merged.get(key, (spelling, 0))
        merged[key] = (name, total + count)
    return Counter({name: total for name, total in merged.values()})
