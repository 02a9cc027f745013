"""Price limits in query text, per language: what is recognised, what is left for retrieval, and what is not a price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from search.price_patterns import LANGUAGES
from search.query_price import parse_amount, parse_query

# (language, query, text left for retrieval, min, max) — amounts as "number CODE"
RECOGNISED = [
    ("en", "wireless headphones under $100", "wireless headphones", None, "100 USD"),
    ("en", "headphones between 50 and 100 dollars", "headphones", "50 USD", "100 USD"),
    ("en", "shoes $50-$100", "shoes", "50 USD", "100 USD"),
    ("en", "coffee over 20 bucks", "coffee", "20 USD", None),
    ("en", "laptop under 1,299.99", "laptop", None, "1299.99 EUR"),  # no currency written: the shopper's
    ("en", "ps5 under 1k", "ps5", None, "1000 EUR"),
    ("es", "zapatillas para correr por menos de 50 euros", "zapatillas para correr", None, "50 EUR"),
    ("es", "menos de 1.500 euros portátil", "portátil", None, "1500 EUR"),
    ("es", "auriculares entre 20 y 49,99 €", "auriculares", "20 EUR", "49.99 EUR"),
    ("ru", "наушники дешевле 3000 рублей", "наушники", None, "3000 RUB"),
    ("ru", "ноутбук от 30 000 до 60 000 руб.", "ноутбук", "30000 RUB", "60000 RUB"),
    ("zh", "500元以下的耳机", "耳机", None, "500 CNY"),
    ("zh", "耳机 100到300元", "耳机", "100 CNY", "300 CNY"),
    ("zh", "相机 ¥2000以上", "相机", "2000 CNY", None),  # ¥ is yuan in Chinese
    ("ar", "سماعات أقل من 200 ريال", "سماعات", None, "200 SAR"),
    ("ar", "سماعات أقل من ٢٠٠ ريال", "سماعات", None, "200 SAR"),  # Arabic-Indic digits
    ("ar", "ساعة بين 100 و 300 دولار", "ساعة", "100 USD", "300 USD"),
    ("ja", "イヤホン 1万円以下", "イヤホン", None, "10000 JPY"),
    ("ja", "カメラ 5万円から10万円まで", "カメラ", "50000 JPY", "100000 JPY"),
    ("ja", "¥3000以下のコーヒー", "コーヒー", None, "3000 JPY"),  # ¥ is yen in Japanese
    ("de", "Laufschuhe unter 100 Euro", "Laufschuhe", None, "100 EUR"),
    ("de", "Kopfhörer zwischen 50 und 80 €", "Kopfhörer", "50 EUR", "80 EUR"),
    ("fr", "casque moins de 80 €", "casque", None, "80 EUR"),
    ("fr", "café entre 20 et 50 euros", "café", "20 EUR", "50 EUR"),
    ("pt", "tênis de corrida até R$ 300", "tênis de corrida", None, "300 BRL"),
    ("pt", "fones acima de 100 reais", "fones", "100 BRL", None),
    ("ko", "무선 이어폰 5만원 이하", "무선 이어폰", None, "50000 KRW"),
    ("ko", "노트북 100만원 이상", "노트북", "1000000 KRW", None),
    ("it", "cuffie sotto i 100 euro", "cuffie", None, "100 EUR"),
    ("it", "scarpe da corsa tra 50 e 90 euro", "scarpe da corsa", "50 EUR", "90 EUR"),
]

# numbers that are sizes, counts, models or ages — never a price
NOT_PRICES = [
    ("es", "libro de 50 páginas"),
    ("es", "objetivo 16-50 mm"),
    ("en", "lens 16-50 mm"),
    ("en", "laptop with more than 16 GB"),
    ("en", "iphone 15 pro"),
    ("en", "tent for 4 people"),
    ("de", "Buch über 50 Seiten"),
    ("de", "Spielzeug ab 5 Jahren"),
    ("ru", "игрушка от 3 лет"),
    ("ru", "ноутбук 16-32 гб"),
    ("zh", "乐高 1000 件以上"),
    ("zh", "65英寸以上电视"),
    ("ja", "500ページ以上の本"),
    ("fr", "tente pour plus de 4 personnes"),
    ("ar", "كتاب أكثر من 300 صفحة"),
    ("ko", "100페이지 이상 책"),
    ("it", "lego più di 500 pezzi"),
    ("pt", "livro de 200 páginas"),
]


def _bound(text: str | None):
    if text is None:
        return None
    amount, currency = text.split()
    return Decimal(amount), currency


@pytest.mark.parametrize(("language", "query", "left", "low", "high"), RECOGNISED)
def test_price_limits_are_recognised_and_cut_out(language, query, left, low, high):
    parsed = parse_query(query, language=language, currency="EUR")
    assert parsed.text == left
    assert parsed.price is not None
    got_low = parsed.price.min_price and (parsed.price.min_price.amount, parsed.price.min_price.currency)
    got_high = parsed.price.max_price and (parsed.price.max_price.amount, parsed.price.max_price.currency)
    assert (got_low, got_high) == (_bound(low), _bound(high))
    assert parsed.price.text and parsed.price.text in query  # the chip shows the words typed


@pytest.mark.parametrize(("language", "query"), NOT_PRICES)
def test_numbers_that_are_not_prices_stay_in_the_query(language, query):
    parsed = parse_query(query, language=language, currency="EUR")
    assert parsed.price is None and parsed.text == query


def test_every_language_in_the_table_has_a_recognised_example_and_a_trap():
    assert {lang for lang, *_ in RECOGNISED} == set(LANGUAGES)
    assert {lang for lang, _ in NOT_PRICES} == set(LANGUAGES)
    assert {"en", "zh", "es", "ar", "ru", "ja", "de", "fr", "pt", "ko", "it"} <= set(LANGUAGES)


def test_a_query_in_another_language_than_the_page_is_still_understood():
    parsed = parse_query("zapatillas por menos de 50 euros", language="en", currency="USD")
    assert parsed.text == "zapatillas" and parsed.price.max_price.currency == "EUR"
    assert parsed.price.language == "es"


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("1.500", "1500"),
        ("1,500", "1500"),
        ("49,99", "49.99"),
        ("49.99", "49.99"),
        ("1.299,99", "1299.99"),
        ("1,299.99", "1299.99"),
        ("3 000", "3000"),
        ("30\u00a0000", "30000"),
        ("2.5", "2.5"),
        ("1.000.000", "1000000"),
    ],
)
def test_amounts_in_every_notation(raw, amount):
    assert parse_amount(raw) == Decimal(amount)


def test_a_query_that_is_only_a_limit_leaves_no_text():
    parsed = parse_query("under 50 €", language="en", currency="USD")
    assert parsed.text == "" and parsed.price.max_price.amount == 50
