"""Products as the API and the pages show them: prices in the reader's locale, plain-text descriptions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency

from catalog.stock import availability
from reranking.text import clean_text
from search.filters import FxRates, PriceBound
from search.index import CatalogItem
from search.service import SearchHit
from search.shop_search import Facets, FacetValue, ShopPage


def display_price(amount: Decimal, currency: str, locale: str | None) -> str:
    """``$399.00`` for en, ``US$399.00`` for zh, ``399,00 US$`` for es; JPY without decimals."""
    try:
        return format_currency(amount, currency, locale=locale or "en")
    except (ValueError, KeyError, AttributeError):
        return f"{amount:,.2f} {currency}"


def item_json(item: CatalogItem, locale: str | None) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "title": item.title,
        "description": clean_text(item.description),
        "brand": item.brand,
        "category": item.category,
        "language": item.language,
        "price": float(item.price),
        "currency": item.currency,
        "price_display": display_price(item.price, item.currency, locale),
        "image": item.image,
        "stock": item.stock,  # null: the feed said nothing about stock (buyable, DESIGN.md §8)
        "availability": availability(item.stock, item.attributes),
        "attributes": item.attributes,
    }


def hit_json(hit: SearchHit, locale: str | None, converted: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        **item_json(hit.item, locale),
        "price_converted": converted,
        "score": round(hit.score, 6),
        "first_stage_rank": hit.first_stage_rank,
        "first_stage_score": round(hit.first_stage_score, 6),
        "rerank_score": None if hit.rerank_score is None else round(hit.rerank_score, 6),
        "retriever_ranks": hit.retriever_ranks,
        "team": hit.team,
    }


def converted_price(item: CatalogItem, currency: str, fx: FxRates, locale: str | None) -> dict[str, Any] | None:
    """The listing's price in the shopper's currency (approximate: one static FX table); None when the listing
    is already in it or its currency has no rate."""
    if item.currency.upper() == currency.upper():
        return None
    amount = fx.convert(item.price, item.currency, currency)
    if amount is None:
        return None
    rounded = Decimal(str(round(amount, 2)))
    return {"amount": float(rounded), "currency": currency, "display": display_price(rounded, currency, locale)}


def bound_json(bound: PriceBound | None) -> dict[str, Any] | None:
    return None if bound is None else {"amount": float(bound.amount), "currency": bound.currency}


def applied_filters_json(page: ShopPage) -> dict[str, Any]:
    """What narrowed these results, including the price limit recognised in the query text."""
    filters, recognised = page.filters, page.recognised_price
    return {
        "query_text": page.parsed.text,
        "category": sorted(filters.categories),
        "brand": sorted(filters.brands),
        "language_of_listing": sorted(filters.languages),
        "in_stock": filters.in_stock,
        "min_price": bound_json(filters.min_price),
        "max_price": bound_json(filters.max_price),
        "price_from_query": None
        if recognised is None
        else {
            "text": recognised.text,
            "language": recognised.language,
            "min_price": bound_json(recognised.min_price),
            "max_price": bound_json(recognised.max_price),
        },
        "sort": page.sort,
        "currency": page.currency,
    }


def facets_json(
    facets: Facets, category_label: Callable[[str], str], language_label: Callable[[str], str]
) -> dict[str, Any]:
    def values(entries: list[FacetValue], label: Callable[[str], str]) -> list[dict[str, Any]]:
        return [{"value": e.value, "label": label(e.value), "count": e.count} for e in entries]

    return {
        "category": values(facets.category, category_label),
        "brand": values(facets.brand, str),
        "language_of_listing": values(facets.language, language_label),
        "in_stock": {"count": facets.in_stock},
        "price": {
            "currency": facets.currency,
            "min": facets.price_min,
            "max": facets.price_max,
            "buckets": [{"min": b.low, "max": b.high, "count": b.count} for b in facets.price_buckets],
        },
    }
