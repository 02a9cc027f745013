"""A shopper's search, as a shop does it: understand the query, filter, rank, keep what matches (the relevance
gate, the same in every arm), put accessories and off-intent products below what the query asks for, keep
out-of-stock products below in-stock ones, count facets, sort, and cut one page.

``SearchService.search`` ranks (filters applied inside the first stage); this module is everything a results
page adds around it, shared by ``/search`` and ``/api/search`` so both say the same ``total``.

- Price limits typed in the query are cut out of the text (``query_price``) and become a price filter; a limit
  given as a URL parameter wins over one in the text.
- ``total`` counts the candidates the relevance gate keeps (``relevance_floor``): at most the first stage's depth
  (100 by default), 0 for nonsense, and 0 with ``related`` products for a query nothing matches well. The gate
  reads only the first stage's candidates, so ``total``, facets and zero-result counts mean the same in every arm.
- Relevance order is the arm's order, with accessories of the product the query asks for moved below the products
  (``search.product_type``); which products match at all is the gate's (intent, windows), never the order's.
- Out of stock: in relevance order, a product that cannot be bought moves down ``OUT_OF_STOCK_DEMOTION``
  places, so it stays above in-stock products ranked much lower but below the in-stock ones of similar
  relevance (rank positions, not scores: the same rule for every reranker and for first-stage order).
- Price sorts compare prices converted to one currency, out-of-stock products after the ones that can be
  bought (else "lowest price first" opens with things nobody can buy); ties keep the relevance order.
- Unknown stock (a feed without stock or availability, ``catalog.stock``) is buyable: never demoted, sorted with
  the in-stock products, counted by the in-stock facet.
- With no words left (only filters, or only "under 50 €"), the page lists every product matching the filters.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass, field

from catalog.stock import is_out_of_stock
from search.catalog_browse import items_matching
from search.filters import FxRates, SearchFilters
from search.query_price import ParsedQuery, PriceConstraint, parse_query
from search.relevance_floor import MATCHED, Decision, RelevanceGate
from search.service import SearchHit, SearchInputError, SearchResult, SearchService, clean_query

SORTS = ("relevance", "price_asc", "price_desc")
#: Places an out-of-stock product moves down in relevance order (see the module docstring).
OUT_OF_STOCK_DEMOTION = 10


@dataclass(frozen=True, slots=True)
class ShopQuery:
    text: str  # as typed, price words included
    currency: str  # the shopper's: limits without a currency, price facet, converted prices
    language: str | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    sort: str = "relevance"
    page: int = 1
    per_page: int = 24
    unit_id: str | None = None
    request_id: str | None = None
    surface: str = "api"
    market: str | None = None


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class PriceBucket:
    low: float | None  # inclusive, in the shopper's currency; None = open
    high: float | None  # exclusive
    count: int


@dataclass(frozen=True, slots=True)
class Facets:
    category: list[FacetValue]
    brand: list[FacetValue]
    language: list[FacetValue]
    in_stock: int
    currency: str
    price_min: float | None
    price_max: float | None
    price_buckets: list[PriceBucket]


@dataclass(frozen=True, slots=True)
class ShopPage:
    parsed: ParsedQuery
    filters: SearchFilters  # what was applied: URL filters plus the limit recognised in the query
    result: SearchResult  # the ranking (a synthetic one when browsing by filters only)
    hits: list[SearchHit]  # this page; ``rank`` is the position over all pages
    total: int
    page: int
    per_page: int
    sort: str
    currency: str
    facets: Facets
    #: matched | related | none (``relevance_floor``); with related, ``related`` holds the closest products
    match: str = MATCHED
    related: list[SearchHit] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def recognised_price(self) -> PriceConstraint | None:
        return self.parsed.price

    @property
    def did_you_mean(self) -> str | None:
        """The shopper's query with misspelt words corrected (the price words kept), when the search used the
        corrections; None otherwise."""
        corrected = self.result.did_you_mean
        if corrected is None:
            return None
        price = self.parsed.price
        return f"{corrected} {price.text}" if price is not None else corrected


def _merged_filters(url: SearchFilters, price: PriceConstraint | None) -> SearchFilters:
    if price is None:
        return url
    return dataclasses.replace(
        url,
        min_price=url.min_price or price.min_price,
        max_price=url.max_price or price.max_price,
    )


def _demote_out_of_stock(hits: list[SearchHit]) -> list[SearchHit]:
    demoted = OUT_OF_STOCK_DEMOTION + 0.5
    order = sorted(range(len(hits)), key=lambda i: i + (demoted if is_out_of_stock(hits[i].item.stock) else 0))
    return [hits[i] for i in order]


def _price_in(hit: SearchHit, currency: str, fx: FxRates) -> float | None:
    return fx.convert(hit.item.price, hit.item.currency, currency)


def _in_tiers(hits: list[SearchHit], tiers: dict[str, int]) -> list[SearchHit]:
    """The arm's order within each tier (stable), tiers in order: see the module docstring."""
    return sorted(hits, key=lambda hit: tiers.get(hit.item.sku, 0))


def _sorted(hits: list[SearchHit], sort: str, fx: FxRates) -> list[SearchHit]:
    if sort == "relevance":
        return _demote_out_of_stock(hits)
    prices = [fx.to_reference(hit.item.price, hit.item.currency) for hit in hits]
    sign = 1 if sort == "price_asc" else -1
    order = sorted(
        range(len(hits)),
        key=lambda i: (is_out_of_stock(hits[i].item.stock), prices[i] is None, sign * (prices[i] or 0.0), i),
    )
    return [hits[i] for i in order]


def _nice(value: float) -> float:
    """The next "round" price at or above ``value``: 1, 2, 5 × a power of ten."""
    if value <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _price_buckets(prices: list[float]) -> list[PriceBucket]:
    """Up to four ranges with round edges near the quartiles of the prices shown."""
    if len(prices) < 2:
        return []
    ordered = sorted(prices)
    edges = sorted({_nice(ordered[int(len(ordered) * q)]) for q in (0.25, 0.5, 0.75)})
    edges = [e for e in edges if ordered[0] < e <= ordered[-1]]
    bounds = list(zip([None, *edges], [*edges, None], strict=True))
    buckets = []
    for low, high in bounds:
        count = sum(1 for p in prices if (low is None or p >= low) and (high is None or p < high))
        if count:
            buckets.append(PriceBucket(low, high, count))
    return buckets


def facets_of(hits: list[SearchHit], currency: str, fx: FxRates) -> Facets:
    """Counts over every matching candidate (all pages), prices in the shopper's currency."""
    categories: dict[str, int] = {}
    brands: dict[str, tuple[str, int]] = {}
    languages: dict[str, int] = {}
    for hit in hits:
        item = hit.item
        categories[item.category] = categories.get(item.category, 0) + 1
        languages[item.language] = languages.get(item.language, 0) + 1
        if item.brand and item.brand.strip():
            name, count = brands.get(item.brand.strip().casefold(), (item.brand.strip(), 0))
            brands[item.brand.strip().casefold()] = (name, count + 1)
    prices = [p for p in (_price_in(hit, currency, fx) for hit in hits) if p is not None]

    def ranked(counts: dict[str, int]) -> list[FacetValue]:
        return [FacetValue(v, c) for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    return Facets(
        category=ranked(categories),
        brand=ranked(dict(brands.values())),
        language=ranked(languages),
        in_stock=sum(1 for hit in hits if not is_out_of_stock(hit.item.stock)),  # what in_stock=true keeps
        currency=currency,
        price_min=round(min(prices), 2) if prices else None,
        price_max=round(max(prices), 2) if prices else None,
        price_buckets=_price_buckets(prices),
    )


class ShopSearch:
    def __init__(self, service: SearchService, gate: RelevanceGate | None = None) -> None:
        self.service = service
        self.gate = gate or RelevanceGate(service.index)

    @property
    def fx(self) -> FxRates:
        return self.service.fx

    def search(self, query: ShopQuery, *, depth: int = 100) -> ShopPage:
        """One page of results; raises ``SearchInputError`` for an empty query without filters."""
        if not isinstance(query.text, str):
            raise SearchInputError("invalid_query", "the query must be a string")
        # length and character checks before the patterns run; an empty query may still browse by filters
        text = clean_query(query.text, self.service.max_query_chars) if query.text.strip() else ""
        parsed = parse_query(text, language=query.language, currency=query.currency)
        filters = _merged_filters(query.filters, parsed.price)
        if parsed.text.strip():
            result = self.service.search(
                parsed.text,
                limit=depth,
                language=query.language,
                unit_id=query.unit_id,
                request_id=query.request_id,
                surface=query.surface,
                market=query.market,
                filters=filters,
            )
            decision = self.gate.decide(parsed.text, result.hits)
            matching = _in_tiers([hit for hit in result.hits if hit.item.sku in decision.matching], decision.tiers)
            related = [hit for sku in decision.related for hit in result.hits if hit.item.sku == sku]
            total = len(matching)
        else:
            decision, related = Decision(MATCHED, frozenset(), (), None), []
            if filters.is_empty():
                raise SearchInputError("empty_query", "the query is empty; type what you are looking for")
            result, matching, total = self._browse(query, filters)
        ordered = _sorted(matching, query.sort, self.fx)
        start = (query.page - 1) * query.per_page
        page_hits = [
            dataclasses.replace(hit, rank=position)
            for position, hit in enumerate(ordered[start : start + query.per_page], start=start + 1)
        ]
        return ShopPage(
            parsed=parsed,
            filters=filters,
            result=result,
            hits=page_hits,
            total=total,
            page=query.page,
            per_page=query.per_page,
            sort=query.sort,
            currency=query.currency,
            facets=facets_of(ordered, query.currency, self.fx),
            match=decision.state,
            related=[dataclasses.replace(hit, rank=n) for n, hit in enumerate(related, start=1)],
        )

    def _browse(self, query: ShopQuery, filters: SearchFilters) -> tuple[SearchResult, list[SearchHit], int]:
        """A listing without a query: the index's browse order, the first ``BROWSE_DEPTH`` products, the true total."""
        items, total = items_matching(self.service.index.refresh_if_changed(), filters, query.language)
        hits = [SearchHit(item, rank, 0.0, rank, 0.0, None, {}) for rank, item in enumerate(items, start=1)]
        result = SearchResult(
            query="",
            language=query.language,
            hits=hits,
            candidates=len(hits),
            experiment=None,
            variant=None,
            reranked=False,
            rerank_status="disabled",
            scorer=None,
            timings_ms={},
            request_id=query.request_id,
            impression_id=str(uuid.uuid4()),
        )
        return result, hits, total
