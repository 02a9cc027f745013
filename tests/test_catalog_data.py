"""Validation of the shipped demo catalog and its labelled query set.

The demo, the offline evaluation and several tests read these files directly, so a
malformed line, a dangling SKU in a judgement or a product labelled with the wrong
language would silently skew every number computed from them. These checks are fast
(pure JSON, no model) and run in every CI build.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from catalog.validation import FIELDS

CATALOG_DIR = Path(__file__).parents[1] / "data" / "catalog"
PRODUCTS_PATH = CATALOG_DIR / "demo_products.jsonl"
QUERIES_PATH = CATALOG_DIR / "demo_queries.jsonl"

PRODUCT_KEYS = set(FIELDS)  # the importer's schema is the one source of truth
QUERY_KEYS = {"id", "query", "language", "relevant", "traps"}

CATEGORIES = {
    "headphones-audio",
    "smartphones",
    "laptops",
    "cameras",
    "running-shoes",
    "outdoor-camping",
    "kitchen-appliances",
    "coffee",
    "home-furniture",
    "beauty-skincare",
    "toys-games",
    "books",
    "sports-fitness",
    "watches",
    "bags-luggage",
    "baby",
    "pet-supplies",
    "garden-tools",
    "gaming",
    "office-supplies",
}

#: Listing language -> currencies of the markets that language is sold in.
CURRENCIES_BY_LANGUAGE = {
    "en": {"USD", "GBP", "EUR"},
    "de": {"EUR"},
    "fr": {"EUR"},
    "es": {"EUR"},
    "it": {"EUR"},
    "pt": {"BRL", "EUR"},
    "zh": {"CNY"},
    "ja": {"JPY"},
    "ko": {"KRW"},
    "ru": {"RUB"},
    "ar": {"SAR", "AED"},
}
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW"}
MAJOR_OTHER_LANGUAGES = ("zh", "es", "de", "fr", "ja", "ru", "ar")
QUERY_LANGUAGES = {"zh", "es", "ar", "ru", "ja", "de", "fr", "en"}

SKU_PATTERN = re.compile(r"^[A-Z]{3}-[A-Z]{2,3}-\d{4}$")
HTML_TAG = re.compile(r"</?([a-zA-Z0-9]+)[^>]*>")
ALLOWED_HTML_TAGS = {"p", "ul", "li", "b"}

#: Characters a text in that language must contain (non-Latin scripts).
SCRIPT_PATTERNS = {
    "zh": re.compile(r"[\u4e00-\u9fff]"),
    "ja": re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]"),
    "ko": re.compile(r"[\uac00-\ud7af]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "ar": re.compile(r"[\u0600-\u06ff]"),
}
#: Common function words: a description in that language uses at least one of them.
FUNCTION_WORDS = {
    "en": {"the", "and", "with", "for", "a", "an", "to", "of", "on", "in", "that", "your"},
    "de": {"der", "die", "das", "und", "mit", "für", "ein", "eine"},
    "fr": {"le", "la", "les", "et", "pour", "des", "une", "avec"},
    "es": {"el", "la", "los", "las", "y", "para", "con", "de"},
    "it": {"il", "la", "di", "e", "con", "per", "in"},
    "pt": {"o", "a", "de", "e", "com", "para", "um"},
}
NON_LATIN = re.compile(r"[\u0400-\u04ff\u0600-\u06ff\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"{path.name}:{number}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{number}: not a JSON object"
        rows.append(row)
    return rows


@cache
def products() -> tuple[dict[str, Any], ...]:
    return tuple(_read_jsonl(PRODUCTS_PATH))


@cache
def queries() -> tuple[dict[str, Any], ...]:
    return tuple(_read_jsonl(QUERIES_PATH))


@cache
def products_by_sku() -> dict[str, dict[str, Any]]:
    return {p["sku"]: p for p in products()}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_accessory(product: dict[str, Any]) -> bool:
    return product["attributes"].get("product_type") == "accessory"


def _plain_text(html: str) -> str:
    return HTML_TAG.sub(" ", html).replace("&amp;", "&")


# ---------------------------------------------------------------- products


def test_every_product_line_has_exactly_the_schema_keys_and_types() -> None:
    for p in products():
        assert set(p) == PRODUCT_KEYS, p.get("sku")
        sku = p["sku"]
        assert isinstance(sku, str) and SKU_PATTERN.match(sku), sku
        assert isinstance(p["title"], str) and p["title"].strip() == p["title"] and p["title"], sku
        assert isinstance(p["description"], str) and len(p["description"]) >= 40, sku
        assert _is_number(p["price"]), sku
        assert isinstance(p["currency"], str), sku
        assert p["category"] in CATEGORIES, (sku, p["category"])
        assert p["language"] in CURRENCIES_BY_LANGUAGE, (sku, p["language"])
        assert p["brand"] is None or (isinstance(p["brand"], str) and p["brand"]), sku
        assert isinstance(p["stock"], int) and not isinstance(p["stock"], bool) and p["stock"] >= 0, sku
        assert isinstance(p["attributes"], dict), sku
        for key, value in p["attributes"].items():
            assert isinstance(key, str) and key, sku
            assert isinstance(value, str) and 0 < len(value) <= 80, (sku, key)
        assert p["image"] is None, sku


def test_skus_are_unique_and_prefixed_by_category() -> None:
    skus = [p["sku"] for p in products()]
    duplicates = [sku for sku, n in Counter(skus).items() if n > 1]
    assert not duplicates
    prefixes_by_category: dict[str, set[str]] = {}
    for p in products():
        prefixes_by_category.setdefault(p["category"], set()).add(p["sku"][:3])
    for category, prefixes in prefixes_by_category.items():
        assert len(prefixes) == 1, (category, prefixes)
    all_prefixes = [next(iter(v)) for v in prefixes_by_category.values()]
    assert len(set(all_prefixes)) == len(all_prefixes)


def test_catalog_is_big_and_broad_enough() -> None:
    assert len(products()) >= 300
    per_category = Counter(p["category"] for p in products())
    assert len(per_category) >= 15
    thin = {c: n for c, n in per_category.items() if n < 10}
    assert not thin, thin


def test_language_mix_is_mostly_english_with_every_major_language_present() -> None:
    per_language = Counter(p["language"] for p in products())
    english_share = per_language["en"] / len(products())
    assert 0.55 <= english_share <= 0.65, english_share
    for language in MAJOR_OTHER_LANGUAGES:
        assert per_language[language] >= 12, (language, per_language[language])


def test_currency_matches_the_listing_language() -> None:
    for p in products():
        assert p["currency"] in CURRENCIES_BY_LANGUAGE[p["language"]], (p["sku"], p["language"], p["currency"])


def test_prices_are_positive_with_valid_minor_units() -> None:
    for p in products():
        price = p["price"]
        assert price > 0, p["sku"]
        if p["currency"] in ZERO_DECIMAL_CURRENCIES:
            assert isinstance(price, int), (p["sku"], price)
        else:
            assert round(price, 2) == price, (p["sku"], price)


def test_some_products_are_out_of_stock_but_few() -> None:
    zero = sum(p["stock"] == 0 for p in products())
    assert 1 <= zero <= len(products()) // 10


def test_non_english_text_is_written_in_its_own_language() -> None:
    for p in products():
        language = p["language"]
        title, text = p["title"], _plain_text(p["description"])
        if language in SCRIPT_PATTERNS:
            pattern = SCRIPT_PATTERNS[language]
            assert pattern.search(title), (p["sku"], "title not in", language)
            assert len(pattern.findall(text)) >= 10, (p["sku"], "description not in", language)
        else:
            words = set(re.findall(r"[a-zà-ÿ]+", text.lower()))
            assert words & FUNCTION_WORDS[language], (p["sku"], "description does not read as", language)
            assert not NON_LATIN.search(text), p["sku"]


def test_japanese_listings_use_kana_not_only_chinese_characters() -> None:
    kana = re.compile(r"[\u3040-\u30ff]")
    for p in products():
        if p["language"] == "ja":
            assert kana.search(p["description"]), p["sku"]


def test_light_html_appears_in_a_minority_of_descriptions_and_only_simple_tags() -> None:
    with_html = [p for p in products() if HTML_TAG.search(p["description"]) or "&amp;" in p["description"]]
    share = len(with_html) / len(products())
    assert 0.05 <= share <= 0.20, share
    for p in with_html:
        tags = {t.lower() for t in HTML_TAG.findall(p["description"])}
        assert tags <= ALLOWED_HTML_TAGS, (p["sku"], tags)
        assert re.search(r"&(?!amp;)", p["description"]) is None, (p["sku"], "unescaped & in HTML description")


def test_keyword_traps_are_tagged_and_multilingual() -> None:
    accessories = [p for p in products() if _is_accessory(p)]
    assert len(accessories) >= 30
    assert len({p["language"] for p in accessories}) >= 5
    assert len({p["category"] for p in accessories}) >= 10


def test_several_price_points_per_category() -> None:
    for category in CATEGORIES:
        prices = [
            p["price"]
            for p in products()
            if p["category"] == category and p["currency"] == "USD" and not _is_accessory(p)
        ]
        assert len(prices) >= 3, category
        assert max(prices) >= 3 * min(prices), (category, min(prices), max(prices))


# ---------------------------------------------------------------- queries


def test_every_query_line_has_exactly_the_schema_keys_and_types() -> None:
    ids = []
    for q in queries():
        assert set(q) == QUERY_KEYS, q.get("id")
        ids.append(q["id"])
        assert isinstance(q["id"], str) and q["id"], q
        assert isinstance(q["query"], str) and q["query"].strip(), q["id"]
        assert q["language"] in QUERY_LANGUAGES, q["id"]
        assert isinstance(q["relevant"], dict) and q["relevant"], q["id"]
        for sku, grade in q["relevant"].items():
            assert isinstance(sku, str), q["id"]
            assert isinstance(grade, int) and not isinstance(grade, bool) and grade in (1, 2, 3), (q["id"], sku)
        assert isinstance(q["traps"], list) and all(isinstance(s, str) for s in q["traps"]), q["id"]
        assert len(set(q["traps"])) == len(q["traps"]), q["id"]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


def test_query_judgements_point_at_existing_products() -> None:
    known = products_by_sku()
    for q in queries():
        dangling = [sku for sku in [*q["relevant"], *q["traps"]] if sku not in known]
        assert not dangling, (q["id"], dangling)


def test_every_query_has_an_exact_match() -> None:
    for q in queries():
        assert 3 in q["relevant"].values(), q["id"]


def test_traps_are_never_good_answers() -> None:
    """A trap may be related (grade 1) but never a good answer: it must not rank first."""
    for q in queries():
        for sku in q["traps"]:
            assert q["relevant"].get(sku, 0) <= 1, (q["id"], sku)


def test_most_queries_have_traps_and_they_are_mostly_accessories() -> None:
    with_traps = [q for q in queries() if q["traps"]]
    assert len(with_traps) >= len(queries()) // 2
    trap_skus = [sku for q in with_traps for sku in q["traps"]]
    accessory_share = sum(_is_accessory(products_by_sku()[s]) for s in trap_skus) / len(trap_skus)
    assert accessory_share >= 0.7, accessory_share


def _is_cross_lingual(query: dict[str, Any]) -> bool:
    """At least half of the exact matches are written in a language other than the query's."""
    exact = [sku for sku, grade in query["relevant"].items() if grade == 3]
    foreign = [sku for sku in exact if products_by_sku()[sku]["language"] != query["language"]]
    return 2 * len(foreign) >= len(exact)


def test_query_set_is_mostly_cross_lingual_and_covers_every_shopper_language() -> None:
    share = sum(_is_cross_lingual(q) for q in queries()) / len(queries())
    assert share >= 0.5, share
    per_language = Counter(q["language"] for q in queries())
    assert set(per_language) == QUERY_LANGUAGES
    assert min(per_language.values()) >= 5, per_language
    same_language = [q for q in queries() if not _is_cross_lingual(q)]
    assert same_language, "keep a few same-language queries as a baseline"


@pytest.mark.parametrize("language", sorted(QUERY_LANGUAGES - {"en"}))
def test_query_text_is_written_in_its_language(language: str) -> None:
    for q in queries():
        if q["language"] != language:
            continue
        if language in SCRIPT_PATTERNS:
            assert SCRIPT_PATTERNS[language].search(q["query"]), q["id"]
        else:
            assert not NON_LATIN.search(q["query"]), q["id"]
