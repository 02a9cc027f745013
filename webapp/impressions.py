"""The impression ids this server hands out with each answer, signed for what it answered.

Search analytics counts an impression only when its id verifies (:mod:`experiments.store.impression_ids` says why
and what stays client-reported). Every page or API answer that the client reports as an impression gets its id
here: the search page and ``/api/search`` (signed for the query text the answer tells the client to echo and the
products it lists), ``/api/rank``, and the listings without a query (home, category, deals, filter-only search).
The key comes from ``SHOPRANK_SECRET_KEY``; nothing a client sends goes into it.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from experiments.store import impression_ids
from search.service import SearchResult
from search.shop_search import ShopPage
from webapp.context import app_services


@lru_cache(maxsize=4)
def _key(secret_key: str) -> bytes:
    return impression_ids.impression_key(secret_key)


def impression_key() -> bytes:
    """This deployment's impression-signing key (what the events API verifies with)."""
    return _key(app_services().settings.secret_key)


def listing_kind(page: ShopPage) -> str:
    """What a search page shows: ``search`` with words, else the listing its filters make (as ``shop.js`` reports)."""
    if page.parsed.text:
        return impression_ids.SEARCH
    if page.filters.categories:
        return "category"
    if page.filters.brands:
        return "brand"
    return "filters"


def signed_id(*, kind: str, query: str = "", items: int) -> str:
    """A fresh signed impression id for an answer of ``kind`` listing ``items`` products."""
    return impression_ids.issue(impression_key(), kind=kind, query=query, items=items)


def signed_result(result: SearchResult, *, kind: str, query: str, items: int) -> SearchResult:
    """``result`` with its impression id replaced by one signed for what the response reports."""
    return dataclasses.replace(result, impression_id=signed_id(kind=kind, query=query, items=items))


def signed_page(page: ShopPage, *, query: str, items: int) -> ShopPage:
    """``page`` whose result carries a signed impression id (the page's kind is :func:`listing_kind`)."""
    return dataclasses.replace(
        page, result=signed_result(page.result, kind=listing_kind(page), query=query, items=items)
    )
