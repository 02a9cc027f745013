"""Typo tolerance against the catalog's vocabulary: the closest indexed word for a query word nobody wrote.

Rules (Algolia's defaults, which shoppers know from large shops): a word of 4+ letters may carry one typo,
a word of 8+ letters two; among equally close words the one in most listings wins (then the alphabetically
first, so the answer is stable). A typo is one edit of the optimal-string-alignment distance (insert, delete,
substitute, swap of two neighbours; ``rapidfuzz``, C++), and, as well, two letters swapped across one other
letter ("bycicle" → "bicycle", "recieve"), the most common misspelling that plain Damerau counts twice.
Numbers, model codes, CJK and Arabic are never corrected (``stemmable`` and script checks): a wrong digit
is another product, and one edit of a short Arabic root is often another real word.

A word the shopper's language uses commonly is not a typo, even when the catalog lacks it: most searches here
cross languages, and "Maus", "pelo" or "unter" must not become "mais", "pole" or "under". ``common_word``
asks ``wordfreq`` (word frequencies of 40 languages from Wikipedia, subtitles, news, web text; its data is
frozen at 2021, which suits a list of common words) whether the written word has a Zipf frequency of at least
``COMMON_ZIPF`` (once per million words) in the query's language or in English (brand and loan words every
shop uses); misspellings sit below ("recieve" 2.8, "hedphones" 0).

Bounded cost: the vocabulary is bucketed by (first letter, length), as Lucene's DirectSpellChecker assumes
by default that the first letter is right; a lookup compares the word with the buckets of lengths ±typos
only (a few thousand words in a 100k vocabulary: 0.5 ms at the median, under 2 ms CPU at p99;
``bench/spelling.py``), and answers are cached per process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from cachetools import LRUCache
from rapidfuzz import process
from rapidfuzz.distance import OSA
from wordfreq import zipf_frequency

from search.stemming import base_language, stemmable

ONE_TYPO_FROM = 4
TWO_TYPOS_FROM = 8
_NOT_CORRECTED = re.compile("[\u0600-\u06ff]")


COMMON_ZIPF = 3.0
#: wordfreq languages whose lists need no extra tokenizer (Japanese and Chinese would need MeCab / jieba).
_WORDFREQ = frozenset(
    {"ar", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi", "hu", "id", "it",
     "lt", "lv", "mk", "ms", "nb", "nl", "pl", "pt", "ro", "ru", "sk", "sl", "sr", "sv", "ta", "tr", "uk", "ur", "vi"}
)  # fmt: skip


def common_word(written: str, languages: Iterable[str | None]) -> bool:
    """Whether ``written`` is a common word (Zipf ≥ ``COMMON_ZIPF``) of any of ``languages``."""
    for language in languages:
        code = base_language(language)
        code = "nb" if code in ("no", "nn") else code
        if code in _WORDFREQ and zipf_frequency(written, code, wordlist="small") >= COMMON_ZIPF:
            return True
    return False


def allowed_typos(word: str) -> int:
    if len(word) >= TWO_TYPOS_FROM:
        return 2
    return 1 if len(word) >= ONE_TYPO_FROM else 0


def correctable(word: str) -> bool:
    """Whether a query word may be corrected at all (letters only, not CJK or Arabic, 4+ letters)."""
    return stemmable(word) and allowed_typos(word) > 0 and not _NOT_CORRECTED.search(word)


def typos(word: str, candidate: str, distance: int | None = None) -> int:
    """OSA distance, with one swap of two letters around another counted as one typo."""
    found = OSA.distance(word, candidate) if distance is None else distance
    if found == 2 and len(word) == len(candidate):
        differ = [i for i, (a, b) in enumerate(zip(word, candidate, strict=True)) if a != b]
        if len(differ) == 2:
            i, j = differ
            if word[i] == candidate[j] and word[j] == candidate[i]:
                return 1
    return found


class Speller:
    """Corrections against one vocabulary (word → number of listings holding it); thread-safe."""

    def __init__(self, vocabulary: Iterable[tuple[str, int]]) -> None:
        grouped: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for word, frequency in vocabulary:
            if correctable(word):
                grouped.setdefault((word[0], len(word)), []).append((word, frequency))
        self._buckets: dict[tuple[str, int], tuple[list[str], list[int]]] = {}
        for key, entries in grouped.items():
            entries.sort(key=lambda e: (-e[1], e[0]))
            self._buckets[key] = ([w for w, _ in entries], [f for _, f in entries])
        self._cache: LRUCache[str, str | None] = LRUCache(maxsize=50_000)
        self._lock = threading.Lock()

    def correct(self, word: str) -> str | None:
        """The vocabulary word ``word`` most likely meant, or None (no close word, or not correctable)."""
        with self._lock:
            if word in self._cache:
                return self._cache[word]
        found = self._lookup(word)
        with self._lock:
            self._cache[word] = found
        return found

    def _lookup(self, word: str) -> str | None:
        if not correctable(word):
            return None
        limit = allowed_typos(word)
        best: tuple[int, int, str] | None = None
        n = len(word)
        for length in range(n - limit, n + limit + 1):
            bucket = self._buckets.get((word[0], length))
            if bucket is None:
                continue
            words, frequencies = bucket
            # a swap across one letter is 2 OSA edits but one typo: look that far for same-length words
            cutoff = max(limit, 2) if length == n else limit
            for candidate, distance, index in process.extract(
                word, words, scorer=OSA.distance, score_cutoff=cutoff, limit=None
            ):
                if candidate == word:
                    return None  # known: nothing to correct
                count = typos(word, candidate, int(distance))
                if count > limit:
                    continue
                key = (count, -frequencies[index], candidate)
                if best is None or key < best:
                    best = key
        return best[2] if best is not None else None
