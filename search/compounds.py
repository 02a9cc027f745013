"""Compound words split into words of the catalog's own vocabulary ("fahrradhelm" → "fahrrad" + "helm").

The approach is Lucene's ``DictionaryCompoundWordTokenFilter`` with the catalog as the dictionary, made
stricter: a word is split only when its parts cover it completely (each part a vocabulary word of at least
``MIN_PART`` letters, optionally joined by a linking morpheme: German "s"/"es"/"n"/"en"/"e"/"er", Dutch
"s"/"en"/"e", Swedish/Danish/Norwegian "s"/"e"), with the fewest parts; the last part may be an inflected form
whose Snowball stem is a vocabulary word ("fahrradhelme"). Full coverage is what keeps "kopfhörer" from being
cut into "kopf" + noise.

Why not a library: on PyPI, ``compound-split`` (last release 2020) covers German and Dutch only, with
probability tables trained on Wikipedia, and ``charsplit``/``charsplit-fst`` are German only; neither knows
a shop's brands or vocabulary, and the Nordic languages are not covered at all. The catalog's vocabulary is
the dictionary that matters here (a part is useful only when listings contain it), so the splitter is this
small dynamic programme over it; stemming is Snowball's (``search.stemming``).
"""

from __future__ import annotations

from collections.abc import Container

from search.stemming import base_language, stem, stemmable

#: Languages whose writing joins compounds into one word: listings in them get their compounds' parts indexed.
COMPOUNDING = frozenset({"de", "nl", "sv", "da", "no", "nb", "nn"})
MIN_PART = 4
MIN_WORD = 8
MAX_PARTS = 4
LINKS: dict[str, tuple[str, ...]] = {
    "de": ("s", "es", "n", "en", "e", "er"),
    "nl": ("s", "en", "e"),
    "sv": ("s", "e"),
    "da": ("s", "e"),
    "no": ("s", "e"),
    "nb": ("s", "e"),
    "nn": ("s", "e"),
}
_ANY_LINKS = tuple(sorted({link for links in LINKS.values() for link in links}, key=len))


def split_compound(word: str, vocabulary: Container[str], language: str | None = None) -> list[str] | None:
    """The parts of ``word`` (2 to ``MAX_PARTS`` vocabulary words covering it), or None when it is no compound.

    ``language`` picks the linking morphemes and the stemmer for an inflected last part; None allows every
    language's links and matches the last part only as written.
    """
    if len(word) < MIN_WORD or not stemmable(word):
        return None
    code = base_language(language)
    links = LINKS.get(code or "", _ANY_LINKS)
    n = len(word)

    def last_part(piece: str) -> str | None:
        if piece in vocabulary:
            return piece
        stemmed = stem(piece, code)
        return stemmed if stemmed != piece and len(stemmed) >= MIN_PART and stemmed in vocabulary else None

    # best[i]: fewest parts covering word[i:], as a list (None: cannot be covered)
    best: list[list[str] | None] = [None] * (n + 1)
    best[n] = []
    for start in range(n - MIN_PART, -1, -1):
        choice: list[str] | None = None
        for end in range(start + MIN_PART, n + 1):
            piece = word[start:end]
            if end == n:
                if start == 0:  # the word itself is not a split of it
                    continue
                found = last_part(piece)
                if found is not None and (choice is None or len(choice) > 1):
                    choice = [found]
                continue
            if piece not in vocabulary:
                continue
            for link in ("", *links):
                after = end + len(link)
                if word[end:after] != link or after > n:
                    continue
                rest = best[after]
                if rest is not None and rest and (choice is None or len(rest) + 1 < len(choice)):
                    choice = [piece, *rest]
        best[start] = choice if choice is not None and len(choice) <= MAX_PARTS else None
    parts = best[0]
    return parts if parts is not None and len(parts) >= 2 else None
