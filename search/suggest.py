"""Search-as-you-type: past searches, categories, brands and product titles that start with what was typed.

A suggestion matches when any of its words starts with the typed text (case- and accent-insensitive via the
search tokenizer's folding), or, for scripts without spaces (Chinese, Japanese), when it contains it. Within each
kind, entries in the shopper's language come first, then the more popular. Past searches come from the searches
the shop itself answered with results, by enough distinct shoppers, less the merchandisers' block list
(``experiments.store.suggestions``; given as a callable, refreshed every ``ttl_seconds``), so this module reads no
database itself. Nothing a client reports (``POST /api/events``) becomes a suggestion.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from catalog.stock import is_out_of_stock
from search.catalog_browse import brand_counts, category_counts
from search.index import CatalogIndex

PastSearches = Callable[[], list[tuple[str, str | None, int]]]

#: How many of each kind a list of ``limit`` suggestions holds at most (titles fill the rest).
_QUOTAS = {"search": 4, "category": 2, "brand": 2}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: str  # search | category | brand | product
    text: str  # what to show (and, for "search", what to search)
    value: str  # the query, category slug, brand or sku
    language: str | None


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def matches(prefix: str, text: str) -> bool:
    """``prefix`` starts a word of ``text`` (or occurs anywhere, for scripts written without spaces)."""
    folded = fold(text)
    if _CJK.search(prefix):
        return prefix in folded
    return folded.startswith(prefix) or any(word.startswith(prefix) for word in re.split(r"[\W_]+", folded) if word)


def _words(folded: str) -> str:
    return " " + " ".join(word for word in re.split(r"[\W_]+", folded) if word) + " "


def blocked(text: str, phrases: Iterable[str]) -> bool:
    """``text`` contains one of ``phrases`` as whole words (or anywhere, for a phrase in a script without spaces),
    compared with the tokenizer's folding, so "Bad Word" blocks "some bad-word here" but "ass" not "glass"."""
    folded = fold(text)
    words = _words(folded)
    for phrase in phrases:
        key = fold(phrase.strip())
        if not key:
            continue
        if _CJK.search(key):
            if key in folded:
                return True
        elif _words(key) in words:
            return True
    return False


class Suggester:
    def __init__(self, index: CatalogIndex, past_searches: PastSearches | None = None, ttl_seconds: float = 60) -> None:
        self._index = index
        self._past_searches = past_searches
        self._ttl = ttl_seconds
        self._cache: tuple[float, list[tuple[str, str | None, int]]] = (0.0, [])
        self._lock = threading.Lock()

    def past_searches(self) -> list[tuple[str, str | None, int]]:
        """``(query, language, count)`` most searched first; a failing log read gives none (never an error)."""
        if self._past_searches is None:
            return []
        fetched_at, rows = self._cache
        if time.monotonic() - fetched_at < self._ttl:
            return rows
        with self._lock:
            try:
                rows = self._past_searches()
            except Exception:  # autocomplete must never fail because the event store is slow or down
                rows = self._cache[1]
            self._cache = (time.monotonic(), rows)
        return rows

    def invalidate(self) -> None:
        """Read past searches again on the next request (after a merchandiser removed or blocked one)."""
        with self._lock:
            self._cache = (0.0, self._cache[1])

    def popular(self, language: str | None, limit: int = 6) -> list[str]:
        """The most searched queries, the shopper's language first (the no-results page's suggestions)."""
        rows = sorted(self.past_searches(), key=lambda r: (r[1] != language, -r[2]))
        seen: list[str] = []
        for query, _lang, _count in rows:
            if query not in seen:
                seen.append(query)
        return seen[:limit]

    def suggest(
        self, typed: str, language: str | None, *, limit: int = 8, category_label: Callable[[str], str] = str
    ) -> list[Suggestion]:
        prefix = fold(typed.strip())
        if not prefix:
            return []
        found: dict[str, list[Suggestion]] = {kind: [] for kind in (*_QUOTAS, "product")}

        searches = sorted(self.past_searches(), key=lambda r: (r[1] != language, -r[2]))
        for query, lang, _count in searches:
            if matches(prefix, query) and fold(query) != prefix:
                found["search"].append(Suggestion("search", query, query, lang))
        for slug, _count in category_counts(self._index).most_common():
            label = category_label(slug)
            if matches(prefix, label) or matches(prefix, slug.replace("-", " ")):
                found["category"].append(Suggestion("category", label, slug, language))
        for brand, _count in brand_counts(self._index).most_common():
            if matches(prefix, brand):
                found["brand"].append(Suggestion("brand", brand, brand, None))
        titles = sorted(self._index.title_sample(), key=lambda t: (t[2] != language, is_out_of_stock(t[3])))
        for sku, title, title_language, _stock in titles:
            if len(found["product"]) >= limit:
                break
            if matches(prefix, title):
                found["product"].append(Suggestion("product", title, sku, title_language))

        chosen: list[Suggestion] = []
        seen: set[str] = set()
        for kind in (*_QUOTAS, "product"):
            quota = _QUOTAS.get(kind, limit)
            for suggestion in found[kind][:quota]:
                key = fold(suggestion.text)
                if key not in seen and len(chosen) < limit:
                    seen.add(key)
                    chosen.append(suggestion)
        return chosen
