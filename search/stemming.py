"""Snowball stems for lexical tokens, per language (PyStemmer: the Snowball C stemmers, ~1M words/s).

Why Snowball and not a lemmatiser: it is the stemmer Lucene, Elasticsearch and Solr ship for these languages,
it needs no model or dictionary, and a shop only needs "zapatilla" and "zapatillas" to meet, not a lemma.

The language is the listing's at index time and the query's at query time (the shopper's UI language, or the
script: Cyrillic → Russian, Arabic → Arabic). A token whose language is unknown stays unstemmed. Only
alphabetic tokens of 3+ letters are stemmed: model numbers ("1000xm5"), CJK bigrams and short words are
left exactly as they are.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import Stemmer

#: Shop language code (first subtag) → Snowball algorithm.
SNOWBALL: dict[str, str] = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
    "sv": "swedish",
    "da": "danish",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "fi": "finnish",
    "ru": "russian",
    "tr": "turkish",
    "ar": "arabic",
    "ca": "catalan",
    "ro": "romanian",
    "hu": "hungarian",
    "pl": "polish",
    "el": "greek",
    "cs": "czech",
    "id": "indonesian",
}
_CJK = re.compile("[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff]")
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_ARABIC = re.compile("[\u0600-\u06ff]")
# Stemmer objects keep a cache and are not thread-safe: one set per thread.
_local = threading.local()


@lru_cache(maxsize=256)
def base_language(language: str | None) -> str | None:
    """``"pt-BR"`` → ``"pt"``; None for none."""
    if not language:
        return None
    return language.replace("_", "-").split("-", 1)[0].strip().lower() or None


def query_language(text: str, language: str | None) -> str | None:
    """The language to stem a query in: the shopper's, else what the script says (Cyrillic, Arabic)."""
    code = base_language(language)
    if code in SNOWBALL:
        return code
    if _CYRILLIC.search(text):
        return "ru"
    if _ARABIC.search(text):
        return "ar"
    return None


#: Distinct words remembered by the per-token helpers below. An index build calls them for every token of every
#: listing (25 per listing, 1M listings); words repeat (Zipf), so a bounded memo cuts the build's text analysis,
#: which was most of its time, without holding a whole vocabulary.
WORD_MEMO = 1 << 16


@lru_cache(maxsize=WORD_MEMO)
def stemmable(token: str) -> bool:
    """Alphabetic, 3+ letters, not CJK: what stemming, decompounding and typo correction may touch."""
    return len(token) >= 3 and token.isalpha() and not _CJK.search(token)


def _stemmer(language: str) -> Stemmer.Stemmer | None:
    cache: dict[str, Stemmer.Stemmer] | None = getattr(_local, "stemmers", None)
    if cache is None:
        cache = _local.stemmers = {}
    found = cache.get(language)
    if found is None:
        algorithm = SNOWBALL.get(language)
        if algorithm is None:
            return None
        found = cache[language] = Stemmer.Stemmer(algorithm)
    return found


@lru_cache(maxsize=WORD_MEMO)
def stem(token: str, language: str | None) -> str:
    """The Snowball stem of ``token`` in ``language``; the token itself when unknown or not stemmable."""
    code = base_language(language)
    if code is None or not stemmable(token):
        return token
    stemmer = _stemmer(code)
    if stemmer is None:
        return token
    stemmed: str = stemmer.stemWord(token)
    return stemmed if len(stemmed) >= 2 else token
