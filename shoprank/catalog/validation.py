"""One catalog row in (a JSON object or a CSV record), a clean ``ProductRecord`` or a list of problems out.

The importer validates the whole file before writing anything, so every message
names its line and field and the operator can fix the file in one pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.numbers import list_currencies

from shoprank.languages import is_known_language

FIELDS = (
    "sku",
    "title",
    "description",
    "price",
    "currency",
    "category",
    "language",
    "brand",
    "stock",
    "attributes",
    "image",
)
REQUIRED = ("sku", "title", "price", "currency", "category", "language")
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_PRICE = Decimal("1e12")


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@dataclass(frozen=True, slots=True)
class ProductRecord:
    sku: str
    title: str
    price: Decimal
    currency: str
    category: str
    language: str
    description: str = ""
    brand: str | None = None
    stock: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    image: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _string(value: Any, name: str, problems: list[str], *, max_len: int, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"{name}: required")
        return None
    if not isinstance(value, str):
        problems.append(f"{name}: must be text, got {type(value).__name__}")
        return None
    value = value.strip()
    if len(value) > max_len:
        problems.append(f"{name}: longer than {max_len} characters ({len(value)})")
        return None
    return value


def _price(value: Any, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        problems.append("price: required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"price: must be a number, got {type(value).__name__}")
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        problems.append(f"price: {value!r} is not a number")
        return None
    if not price.is_finite() or price < 0 or price >= MAX_PRICE:
        problems.append(f"price: {value!r} must be a non-negative amount below {MAX_PRICE:,.0f}")
        return None
    if price != price.quantize(Decimal("0.01")):
        problems.append(f"price: {value!r} has more than 2 decimal places")
        return None
    return price.quantize(Decimal("0.01"))


def _stock(value: Any, problems: list[str]) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append(f"stock: {value!r} must be a whole number ≥ 0")
        return 0
    return value


def _attributes(value: Any, problems: list[str]) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):  # CSV carries attributes as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(f"attributes: not valid JSON ({exc.msg})")
            return {}
    if not isinstance(value, Mapping):
        problems.append("attributes: must be a JSON object")
        return {}
    return dict(value)


def _image(value: Any, problems: list[str]) -> str | None:
    image = _string(value, "image", problems, max_len=1000)
    if image is None:
        return None
    if not (image.startswith(("https://", "http://")) or (image.startswith("/") and not image.startswith("//"))):
        problems.append("image: must be an http(s) URL or a site path starting with /")
        return None
    return image


def validate_row(raw: Any) -> ProductRecord:
    """A ``ProductRecord``, or ``RowProblems`` listing every problem in the row."""
    if not isinstance(raw, Mapping):
        raise RowProblems([f"expected an object with the fields {', '.join(REQUIRED)}"])
    problems: list[str] = []
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        problems.append(f"unknown field(s): {', '.join(unknown)} (expected some of {', '.join(FIELDS)})")

    sku = _string(raw.get("sku"), "sku", problems, max_len=64, required=True)
    if sku and not _SKU.match(sku):
        problems.append(f"sku: {sku!r} may only use letters, digits, '.', '_' and '-'")
    title = _string(raw.get("title"), "title", problems, max_len=500, required=True)
    description = _string(raw.get("description"), "description", problems, max_len=20_000) or ""
    price = _price(raw.get("price"), problems)
    currency = _string(raw.get("currency"), "currency", problems, max_len=3, required=True)
    if currency and currency not in known_currencies():
        problems.append(f"currency: {currency!r} is not an ISO 4217 code (e.g. USD, EUR, CNY)")
    category = _string(raw.get("category"), "category", problems, max_len=64, required=True)
    if category and not _SLUG.match(category):
        problems.append(f"category: {category!r} must be a lowercase slug like 'headphones' or 'running-shoes'")
    language = _string(raw.get("language"), "language", problems, max_len=3, required=True)
    if language and not is_known_language(language):
        problems.append(f"language: {language!r} is not an ISO 639-1 code (e.g. en, zh, es, ar)")
    brand = _string(raw.get("brand"), "brand", problems, max_len=200)
    stock = _stock(raw.get("stock"), problems)
    attributes = _attributes(raw.get("attributes"), problems)
    image = _image(raw.get("image"), problems)
    if problems:
        raise RowProblems(problems)
    assert sku and title and price is not None and currency and category and language  # for the type checker
    return ProductRecord(
        sku=sku,
        title=title,
        description=description,
        price=price,
        currency=currency,
        category=category,
        language=language,
        brand=brand,
        stock=stock,
        attributes=attributes,
        image=image,
    )
