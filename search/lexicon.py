"""What the lexical index holds for a text, and what a query searches with: the one analysis both sides share.

Documents (built versions and delta documents alike, ``document_terms``):

- every token as written (folded, ``search.tokenize``): model numbers and brands match exactly;
- its Snowball stem in the listing's language, as an extra term (tf 1 per occurrence): "zapatillas" also
  holds "zapatill". Indexing both, rather than stems only, keeps an exact match scoring above an inflected
  one (it matches the surface term *and* the stem) and lets a query in another language, or in none, still
  meet the listing's words as written;
- for compound words of listings in German, Dutch and the Nordic languages, their parts (``search.compounds``
  against the catalog's vocabulary) at ``PART_WEIGHT`` of the compound's frequency, so "helm" finds
  "Fahrradhelm" below listings that say "Helm". Parts need the whole vocabulary, so a build adds them to the
  postings once every product is read (``PostingsBuilder.save(derived=...)``), and stores the map
  (``lex_compounds.json``) that delta documents use; a delta document's word the build never saw is split
  against the stored vocabulary.

BM25's document length stays the number of tokens as written: the extra terms do not make a listing "longer".

Queries (``Lexicon.query_terms``): each token as written plus its stem in the query's language. A token the
index does not know in either form is, in order, split into vocabulary words (query-side decompounding: an
unknown word that is exactly two to four catalog words is meant as them; against the words of the query
language's listings for German, Dutch and the Nordic languages, of all listings otherwise, so "fahrradhelm"
works in an English UI too), left alone when it is a common word of the shopper's language or English that
the catalog happens to lack (``search.spelling.common_word``), or else corrected to the closest vocabulary word
(``search.spelling``); a correction is what "did you mean" shows. Known words are never corrected; a known
compound (one the build split) adds its parts, so "Fahrradhelm" also finds "Fahrrad Helm" listings, below
the ones that say "Fahrradhelm" (they match the word itself too).

The vocabulary (``lex_words.tsv``: word, listings holding it, display spelling) is stored with each version
and loaded by a process the first time a query needs it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from search.compounds import COMPOUNDING, split_compound
from search.spelling import Speller, common_word
from search.stemming import base_language, query_language, stem, stemmable
from search.tokenize import tokenize, tokenize_forms

#: A compound's part counts this much of the compound's own term frequency.
PART_WEIGHT = 0.5
WORDS_FILE = "lex_words.tsv"
COMPOUNDS_FILE = "lex_compounds.json"
_WORD = re.compile(r"[^\W_]+")


def _with_stems(terms: dict[str, float], tokens: Sequence[str], language: str | None) -> None:
    if base_language(language) is None:
        return
    for token in tokens:
        stemmed = stem(token, language)
        if stemmed != token:
            terms[stemmed] = terms.get(stemmed, 0.0) + 1.0


def part_terms(parts: Sequence[str], language: str | None) -> list[str]:
    """A compound's parts as index terms: each part and its stem in the listing's language."""
    out: list[str] = []
    for part in parts:
        for term in (part, stem(part, language)):
            if term not in out:
                out.append(term)
    return out


def document_terms(
    tokens: Sequence[str],
    language: str | None,
    compounds: Mapping[str, Sequence[str]] | None = None,
    split: Callable[[str, str | None], list[str] | None] | None = None,
) -> dict[str, float]:
    """Term → weighted frequency of one listing: tokens, their stems, and (given the version's map) compound parts.

    ``compounds``: word → its part terms, from the build; ``split``: how to split a compound word the map lacks
    (delta documents of a compounding language; None at build time, where parts are added after the pass).
    """
    terms: dict[str, float] = {}
    for token in tokens:
        terms[token] = terms.get(token, 0.0) + 1.0
    _with_stems(terms, tokens, language)
    if compounds is None:
        return terms
    compounding = base_language(language) in COMPOUNDING
    for word, frequency in [(t, terms[t]) for t in dict.fromkeys(tokens)]:
        derived = compounds.get(word)
        if derived is None and compounding and split is not None:
            parts = split(word, language)
            derived = part_terms(parts, language) if parts else None
        for term in derived or ():
            terms[term] = terms.get(term, 0.0) + PART_WEIGHT * frequency
    return terms


class VocabularyBuilder:
    """Collects, during a build, each word's document frequency, its display spelling and its compound language."""

    def __init__(self) -> None:
        self.frequency: Counter[str] = Counter()
        self.display: dict[str, str] = {}
        self.compound_language: dict[str, str] = {}  # word seen in a compounding-language listing → that language
        self.languages: dict[str, set[str]] = {}  # compounding language → the words of its listings (the parts)

    def add(self, forms: Sequence[tuple[str, str]], language: str | None) -> list[str]:
        """Record one listing's (token, written form) pairs; returns its tokens."""
        tokens = [token for token, _ in forms]
        code = base_language(language)
        compounding = code in COMPOUNDING
        seen: set[str] = set()
        for token, written in forms:
            if token in seen or not stemmable(token):
                continue
            seen.add(token)
            if written != token and token not in self.display:
                self.display[token] = written
            if compounding:
                self.compound_language.setdefault(token, code or "")
                self.languages.setdefault(code or "", set()).add(token)
        self.frequency.update(seen)
        return tokens

    def compounds(self) -> dict[str, list[str]]:
        """Word → part terms, for every compound word of a compounding-language listing."""
        out: dict[str, list[str]] = {}
        for word, language in self.compound_language.items():
            # parts are words of listings in the same language: "marchenschloss" is no French "marche" + "schloss"
            parts = split_compound(word, self.languages.get(language, ()), language)
            if parts:
                out[word] = part_terms(parts, language)
        return out

    def save(self, directory: Path, compounds: Mapping[str, Sequence[str]]) -> None:
        with open(directory / WORDS_FILE, "w", encoding="utf-8") as handle:
            by_word: dict[str, list[str]] = {}
            for language, words in self.languages.items():
                for word in words:
                    by_word.setdefault(word, []).append(language)
            for word, frequency in sorted(self.frequency.items(), key=lambda kv: (-kv[1], kv[0])):
                languages = ",".join(sorted(by_word.get(word, ())))
                handle.write(f"{word}\t{frequency}\t{self.display.get(word, '')}\t{languages}\n")
        (directory / COMPOUNDS_FILE).write_text(json.dumps(dict(compounds), ensure_ascii=False), encoding="utf-8")


@dataclass(frozen=True, slots=True)
class QueryTerms:
    terms: list[str]  # what to search the postings with
    corrections: dict[str, str]  # query token → the vocabulary word it was corrected to
    did_you_mean: str | None  # the query as written, with each correction applied (None: nothing corrected)


@dataclass(frozen=True)
class _Stored:
    frequency: dict[str, int]
    display: dict[str, str]
    languages: dict[str, frozenset[str]]  # compounding language → words of its listings
    compounds: dict[str, list[str]]
    speller: Speller


class Lexicon:
    """A version's stored vocabulary and compound map, loaded lazily (once per process and version)."""

    def __init__(self, directory: Path, known: Callable[[str], bool]) -> None:
        self._directory = directory
        self._known = known
        self._lock = threading.Lock()
        self._stored: _Stored | None = None

    def _load(self) -> _Stored:
        stored = self._stored
        if stored is not None:
            return stored
        with self._lock:
            if self._stored is None:
                frequency: dict[str, int] = {}
                display: dict[str, str] = {}
                languages: dict[str, set[str]] = {}
                path = self._directory / WORDS_FILE
                if path.exists():  # versions built before the vocabulary was stored have none
                    with open(path, encoding="utf-8") as handle:
                        for line in handle:
                            word, count, written, in_languages = line.rstrip("\n").split("\t")
                            frequency[word] = int(count)
                            if written:
                                display[word] = written
                            for language in in_languages.split(",") if in_languages else ():
                                languages.setdefault(language, set()).add(word)
                compounds_path = self._directory / COMPOUNDS_FILE
                compounds = json.loads(compounds_path.read_text(encoding="utf-8")) if compounds_path.exists() else {}
                self._stored = _Stored(
                    frequency,
                    display,
                    {language: frozenset(words) for language, words in languages.items()},
                    compounds,
                    Speller(frequency.items()),
                )
            return self._stored

    @property
    def words(self) -> Mapping[str, int]:
        return self._load().frequency

    @property
    def compounds(self) -> Mapping[str, list[str]]:
        return self._load().compounds

    def split(self, word: str, language: str | None) -> list[str] | None:
        """``word`` split into words of ``language``'s listings (a compounding language), else of any listing."""
        stored = self._load()
        code = base_language(language)
        vocabulary: Container[str] = stored.languages.get(code or "") or stored.frequency
        return split_compound(word, vocabulary, language)

    def document_terms(self, tokens: Sequence[str], language: str | None) -> dict[str, float]:
        """A delta document's terms, as the build would have indexed it."""
        return document_terms(tokens, language, self.compounds, self.split)

    def query_terms(self, query: str, language: str | None) -> QueryTerms:
        """The terms to search for ``query`` typed in ``language`` (the shopper's; None: by script or unstemmed)."""
        code = query_language(query, language)
        terms: list[str] = []
        corrections: dict[str, str] = {}

        def add(term: str) -> None:
            if term not in terms:
                terms.append(term)

        for token, written in tokenize_forms(query):
            stemmed = stem(token, code)
            add(token)
            add(stemmed)
            if not stemmable(token):
                continue
            if self._known(token) or self._known(stemmed):
                for term in self.compounds.get(token, ()):  # a known compound also finds listings of its parts
                    add(term)
                continue
            parts = self.split(token, code)
            if parts:
                for term in part_terms(parts, code):
                    add(term)
                continue
            if common_word(written, (code, "en")):
                continue  # a real word of the shopper's language that the catalog lacks is no typo
            fixed = self._load().speller.correct(token)
            if fixed is not None:
                corrections[token] = fixed
                add(fixed)
                add(stem(fixed, code))
        return QueryTerms(terms, corrections, self._rewrite(query, corrections) if corrections else None)

    def _rewrite(self, query: str, corrections: Mapping[str, str]) -> str:
        display = self._load().display

        def replace(match: re.Match[str]) -> str:
            written = match.group(0)
            tokens = tokenize(written)
            if len(tokens) != 1 or tokens[0] not in corrections:
                return written
            fixed = corrections[tokens[0]]
            fixed = display.get(fixed, fixed)
            return fixed[:1].upper() + fixed[1:] if written[:1].isupper() else fixed

        return _WORD.sub(replace, query)
