"""Candidates a shop's own first stage found (``POST /api/rank``): catalog SKUs or inline products.

A shop that keeps Elasticsearch, OpenSearch, Solr or Vespa sends us its hits. A hit that names a product of
our catalog is ranked as that product (its stored title, description and price); a hit sent inline is ranked
from what the shop sent, with the passage built by the same formatter as catalog products, so the reranker and
its score cache cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from catalog.vectors import product_passage
from search.index import CatalogItem

#: What ``resolve_candidates`` calls to find catalog products: ``CatalogIndex.get`` (found ones, any order).
CatalogLookup = Callable[[Sequence[str]], list[CatalogItem]]


@dataclass(frozen=True, slots=True)
class CatalogRef:
    """A candidate given by SKU: ranked as our catalog's product."""

    index: int  # position in the request's ``candidates``, 0-based
    sku: str


@dataclass(frozen=True, slots=True)
class InlineProduct:
    """A candidate given by its fields; ``sku`` is the client's id, or ``candidate-<index>`` when it sent none."""

    index: int
    sku: str
    title: str
    description: str = ""
    price: Decimal | None = None
    currency: str | None = None
    language: str | None = None
    brand: str | None = None
    category: str | None = None
    image: str | None = None
    stock: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


Candidate = CatalogRef | InlineProduct


def generated_sku(index: int) -> str:
    """The sku of an inline product sent without one: unique within the request, usable in events."""
    return f"candidate-{index}"


def inline_item(product: InlineProduct) -> CatalogItem:
    """A ``CatalogItem`` for an inline product; its passage leaves out whatever the client did not send.

    ``CatalogItem`` has no "unknown" price, so it is 0 there; the passage is built from the fields as sent (a
    missing price is no "Price:" line, never "0.00"), and the API shows missing fields as null. A product sent
    without stock has unknown availability (stock None), as a catalog product whose feed gave none.
    """
    passage = product_passage(
        {
            "title": product.title,
            "description": product.description,
            "price": product.price,
            "currency": product.currency,
            "brand": product.brand,
            "attributes": product.attributes,
        }
    )
    return CatalogItem(
        id=0,
        sku=product.sku,
        title=product.title,
        description=product.description,
        price=product.price if product.price is not None else Decimal(0),
        currency=product.currency or "",
        category=product.category or "",
        language=product.language or "",
        brand=product.brand,
        image=product.image,
        stock=product.stock,
        attributes=dict(product.attributes),
        passage=passage,
    )


@dataclass(frozen=True, slots=True)
class ResolvedCandidates:
    """The candidates to rank, in the client's order, and the SKUs our catalog does not have."""

    items: list[CatalogItem]
    #: Request index of each of ``items``.
    indexes: list[int]
    #: ``{"index", "sku", "reason"}`` for every candidate left out.
    ignored: list[dict[str, Any]]

    def index_of(self) -> dict[str, int]:
        """sku → request index (skus are unique within a request)."""
        return {item.sku: index for item, index in zip(self.items, self.indexes, strict=True)}


def resolve_candidates(candidates: Sequence[Candidate], lookup: CatalogLookup) -> ResolvedCandidates:
    """Catalog products for the SKU candidates (one lookup for all of them), items for the inline ones.

    An unknown SKU is left out and reported rather than failing the request: a shop's search index often runs
    a little ahead of or behind our catalog import, and its search page must still answer.
    """
    found = {item.sku: item for item in lookup([c.sku for c in candidates if isinstance(c, CatalogRef)])}
    items: list[CatalogItem] = []
    indexes: list[int] = []
    ignored: list[dict[str, Any]] = []
    for candidate in candidates:
        if isinstance(candidate, InlineProduct):
            item: CatalogItem | None = inline_item(candidate)
        else:
            item = found.get(candidate.sku)
        if item is None:
            ignored.append({"index": candidate.index, "sku": candidate.sku, "reason": "unknown_sku"})
            continue
        items.append(item)
        indexes.append(candidate.index)
    return ResolvedCandidates(items, indexes, ignored)
