"""Passage formatting: the exact text the reranker reads, and part of its cache key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reranking.passages import PASSAGE_FORMAT_VERSION, Product, format_passage, format_price
from reranking.text import clean_text, normalize_query, trim_at_word_boundary


def test_three_line_shape_keeps_case_and_punctuation():
    text = format_passage(Product(title="Sony WH-1000XM5", description="Best-in-class ANC.", price=399, currency="USD"))
    assert text == "Title: Sony WH-1000XM5\nDescription: Best-in-class ANC.\nPrice: $399.00"


def test_html_is_stripped_scripts_dropped_entities_decoded():
    text = format_passage(
        {
            "title": "<b>Café</b> &amp; Bar Set",
            "description": "<p>Two&nbsp;cups</p><script>alert('x')</script>"
            "<ul><li>Porcelain</li><li>Dishwasher-safe</li></ul>",
        }
    )
    assert text == "Title: Café & Bar Set\nDescription: Two cups. Porcelain. Dishwasher-safe"
    assert "alert" not in text and "<" not in text


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (19.9, "EUR", "€19.90"),
        (1280, "JPY", "¥1,280"),
        ("5", "usd", "$5.00"),
        (Decimal("1999.5"), "GBP", "£1,999.50"),
        (99, "RUB", "RUB99.00"),
        (10, "XYZ", "XYZ10.00"),
        (12.5, None, "12.50"),
    ],
)
def test_prices_carry_their_currency(amount, currency, expected):
    assert format_price(amount, currency) == expected


def test_missing_fields_are_omitted_not_left_blank():
    assert format_passage({"title": "Plain mug"}) == "Title: Plain mug"
    assert format_passage({"title": "Mug", "price": None, "currency": "EUR", "description": "  "}) == "Title: Mug"
    assert format_passage({"title": "Mug", "price": "not a number"}) == "Title: Mug"
    assert format_passage({"title": "Mug", "price": -3, "currency": "EUR"}) == "Title: Mug"


def test_cjk_and_rtl_text_pass_through_unchanged():
    chinese = format_passage(
        {"title": "索尼 无线降噪耳机", "description": "长续航，蓝牙5.3", "price": 2499, "currency": "CNY"}
    )
    assert chinese == "Title: 索尼 无线降噪耳机\nDescription: 长续航，蓝牙5.3\nPrice: CN¥2,499.00"
    arabic = format_passage(
        {"title": "سماعات لاسلكية", "description": "إلغاء الضوضاء", "price": 150, "currency": "SAR"}
    )
    assert arabic.splitlines()[0] == "Title: سماعات لاسلكية"
    assert "إلغاء الضوضاء" in arabic


def test_list_items_and_paragraphs_do_not_fuse():
    text = clean_text("<p>Great sound!</p><ul><li>30 h battery</li><li>Aware Mode</li></ul><p>USB-C</p>")
    assert text == "Great sound! 30 h battery. Aware Mode. USB-C"
    assert clean_text("<ul><li>防水</li><li>长续航。</li></ul>") == "防水. 长续航。"
    assert clean_text("inline <b>bold</b> text<br>next") == "inline bold text. next"


def test_rtl_marks_and_joiners_survive_but_control_chars_do_not():
    assert clean_text("a\u200db\u200fc") == "a\u200db\u200fc"
    assert clean_text("bad\x00\x07text") == "badtext"


def test_huge_description_is_trimmed_at_a_word_boundary():
    description = "word " * 5000
    text = format_passage({"title": "T", "description": description}, max_description_chars=200)
    line = text.splitlines()[1].removeprefix("Description: ")
    assert len(line) <= 200
    assert line.endswith("word…")


def test_unspaced_scripts_are_cut_at_the_budget():
    assert trim_at_word_boundary("耳" * 500, 50) == "耳" * 49 + "…"


def test_brand_and_attributes_are_included_once():
    text = format_passage({"title": "WH-1000XM5", "brand": "Sony", "attributes": {"color": "Black", "weight": "250 g"}})
    assert text.splitlines() == ["Title: Sony WH-1000XM5", "Description: color: Black; weight: 250 g"]
    assert format_passage({"title": "Sony WH-1000XM5", "brand": "sony"}).startswith("Title: Sony WH-1000XM5")


def test_deterministic_and_versioned():
    product = {"title": "x", "attributes": {"b": 1, "a": 2}, "price": 1, "currency": "EUR"}
    assert format_passage(product) == format_passage(dict(reversed(list(product.items()))))
    assert isinstance(PASSAGE_FORMAT_VERSION, int)


def test_query_normalization_keeps_case():
    assert normalize_query("  Apple   iPhone\t15 ") == "Apple iPhone 15"
    assert normalize_query("e\u0301") == "\u00e9"
