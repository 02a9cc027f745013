"""Product → passage text, the exact string the cross-encoder reads.

The passage format is part of the score-cache key (``PASSAGE_FORMAT_VERSION``): any
change to what this module emits must bump the version, or cached scores computed
for the old text would be served for the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_currency

from reranking.text import clean_text, trim_at_word_boundary

#: 2: HTML block elements (list items, paragraphs) end as sentences instead of fusing.
#: 3: a long description is trimmed before the attributes are appended, so they are no longer cut off.
PASSAGE_FORMAT_VERSION = 3

#: Default character budget for the description. ~1,200 characters is ~300–400
#: XLM-R tokens for Latin scripts: together with title and price it fills most of
#: a 512-token window without wasting tokenizer time on text that would be cut anyway.
DEFAULT_DESCRIPTION_CHARS = 1200


def format_price(amount: Any, currency: str | None, locale: str = "en_US") -> str:
    """Price with its currency symbol (``€19.90``, ``¥1,280``, ``US$5.00``).

    Formatting uses one fixed locale so the passage (and its cache key) does not
    depend on the shopper's language; Babel knows each currency's minor units
    (JPY has none, so ``¥1,280`` not ``¥1,280.00``).
    """
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return ""
    if not value.is_finite() or value < 0:
        return ""
    code = (currency or "").strip().upper()
    if not code:
        return f"{value:,.2f}"
    try:
        return format_currency(value, code, locale=locale)
    except (ValueError, KeyError):  # unknown currency code: keep the code, never drop the price
        return f"{value:,.2f} {code}"


@dataclass(frozen=True, slots=True)
class Product:
    """The fields a passage is built from. Everything but the title is optional."""

    title: str
    description: str | None = None
    price: Decimal | float | str | None = None
    currency: str | None = None
    brand: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Product:
        """Build from a catalog row / JSON object, ignoring unknown keys."""
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            attributes = {}
        return cls(
            title=str(data.get("title") or ""),
            description=data.get("description"),
            price=data.get("price"),
            currency=data.get("currency"),
            brand=data.get("brand"),
            attributes=attributes,
        )


def format_passage(product: Product | Mapping[str, Any], max_description_chars: int = DEFAULT_DESCRIPTION_CHARS) -> str:
    """``Title: …\\nDescription: …\\nPrice: …`` with missing fields left out entirely.

    Brand and attributes, when present, go into the title line and the description
    respectively, so the three-line shape the model was tuned on stays intact.
    """
    if not isinstance(product, Product):
        product = Product.from_mapping(product)
    title = clean_text(product.title)
    brand = clean_text(product.brand)
    if brand and brand.casefold() not in title.casefold():
        title = f"{brand} {title}" if title else brand

    description = clean_text(product.description)
    attribute_text = "; ".join(
        f"{clean_text(str(key))}: {clean_text(str(value))}"
        for key, value in sorted(product.attributes.items(), key=lambda kv: str(kv[0]))
        if clean_text(str(value))
    )
    if attribute_text and description:
        # The attributes are key facts (colour, size, material): the description's own text is trimmed to make
        # room for them, never they (``reranking.passage_budget`` keeps them when it cuts by tokens, too).
        room = max_description_chars - len(attribute_text) - 3
        if room > 0:
            description = f"{trim_at_word_boundary(description, room)} ({attribute_text})"
        else:
            description = trim_at_word_boundary(f"{description} ({attribute_text})", max_description_chars)
    else:
        description = trim_at_word_boundary(description or attribute_text, max_description_chars)

    lines = []
    if title:
        lines.append(f"Title: {title}")
    if description:
        lines.append(f"Description: {description}")
    price = format_price(product.price, product.currency)
    if price:
        lines.append(f"Price: {price}")
    return "\n".join(lines)
