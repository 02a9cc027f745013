"""Products as the API and the pages show them: prices in the reader's locale, plain-text descriptions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.numbers import format_currency

from reranking.text import clean_text
from shoprank.search.index import CatalogItem
from shoprank.search.service import SearchHit


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
        "stock": item.stock,
        "attributes": item.attributes,
    }


def hit_json(hit: SearchHit, locale: str | None) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        **item_json(hit.item, locale),
        "score": round(hit.score, 6),
        "first_stage_rank": hit.first_stage_rank,
        "first_stage_score": round(hit.first_stage_score, 6),
        "rerank_score": None if hit.rerank_score is None else round(hit.rerank_score, 6),
        "retriever_ranks": hit.retriever_ranks,
        "team": hit.team,
    }
