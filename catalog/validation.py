"""One catalog row in (normalised by a feed parser), a clean ``ProductRecord`` or a list of problems out.

Every message names its field, and the importer adds the line, so the operator can
fix a file in one pass. Real feeds are accepted as merchants have them: prices with
currency text (``19.99 USD``), category display names and paths, an availability
instead of a stock count, and any number of extra fields, kept as attributes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.numbers import list_currencies

from catalog.categories import parse_category
from shoprank.languages import is_known_language
from shoprank.storable_text import unstorable_problem

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
#: Accepted besides ``FIELDS``: turned into ``stock`` when no stock is given, and kept as an attribute.
#: A row with neither is stored with stock unknown (None; see ``catalog.stock``).
AVAILABILITY = "availability"
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PRICE = Decimal("1e12")
#: Attribute limits, shared with ``POST /api/rank`` (webapp.rank_schema): a product page and a search answer
#: carry every attribute, so one product must not be able to make them megabytes.
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_CHARS = 1000
MAX_ATTRIBUTE_NAME_CHARS = 100
#: Nesting below an attribute (``{"sizes": ["S", "M"]}`` is depth 1) and items in one list or object.
MAX_ATTRIBUTE_DEPTH = 2
MAX_ATTRIBUTE_ITEMS = 50
#: ``19.99 USD``, ``USD 19.99``, ``$1,299.00``, ``19,99 €``: an amount and at most one currency mark.
_MARK = r"[A-Za-z]{3}|US\$|[^\d\s.,-]{1,3}"
_PRICE_TEXT = re.compile(rf"^\s*(?P<pre>{_MARK})?\s*(?P<amount>-?[\d.,' ]+?)\s*(?P<post>{_MARK})?\s*$")
_CURRENCY_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₩": "KRW", "₽": "RUB", "₹": "INR"}
_IN_STOCK = {"in stock", "in_stock", "instock", "preorder", "pre-order", "backorder", "available"}
_OUT_OF_STOCK = {"out of stock", "out_of_stock", "outofstock", "sold out", "discontinued", "unavailable"}


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
    stock: int | None = 0  # None: the feed said nothing about stock (availability unknown, ``catalog.stock``)
    attributes: dict[str, Any] = field(default_factory=dict)
    image: str | None = None
    category_name: str | None = None  # the feed's display name of the category leaf, for pages
    category_path: str | None = None  # the feed's full path, when it gave more than one level

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def text_field(value: Any, name: str, problems: list[str], *, max_len: int, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"{name}: required")
        return None
    if not isinstance(value, str):
        problems.append(f"{name}: must be text, got {type(value).__name__}")
        return None
    text = value.strip()
    if len(text) > max_len:
        problems.append(f"{name}: longer than {max_len} characters ({len(text)})")
        return None
    unstorable = unstorable_problem(text)
    if unstorable is not None:  # the same rule as every API (shoprank.storable_text): NUL, C0 controls, DEL
        problems.append(f"{name}: {unstorable}")
        return None
    return text


def _amount(text: str) -> Decimal:
    """``1,299.00``, ``1.299,00``, ``19,99``, ``1 299``: a last ``.``/``,`` followed by 1–2 digits is decimal."""
    text = text.replace(" ", "").replace("'", "")
    last = max(text.rfind("."), text.rfind(","))
    if last >= 0 and 1 <= len(text) - last - 1 <= 2:
        whole, fraction = text[:last], text[last + 1 :]
    else:
        whole, fraction = text, "0"
    whole = whole.replace(",", "").replace(".", "")
    return Decimal(f"{whole or '0'}.{fraction}")


def split_price(value: Any) -> tuple[Any, str | None]:
    """``"19.99 USD"`` → (``"19.99"``, ``"USD"``); a bare number stays as it is, with no currency."""
    if not isinstance(value, str):
        return value, None
    match = _PRICE_TEXT.match(value)
    if not match or not (match.group("pre") or match.group("post")) or (match.group("pre") and match.group("post")):
        return value, None
    mark = (match.group("pre") or match.group("post") or "").strip()
    currency = _CURRENCY_SYMBOLS.get(mark, mark.upper() if mark.isalpha() else None)
    if currency is None:
        return value, None
    try:
        return str(_amount(match.group("amount"))), currency
    except InvalidOperation:
        return value, None


def price_field(value: Any, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        problems.append("price: required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"price: must be a number, got {type(value).__name__}")
        return None
    price: Decimal | None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        try:  # thousands separators or a decimal comma, without a currency
            price = _amount(str(value).strip()) if re.fullmatch(r"[\d.,' ]+", str(value).strip()) else None
        except InvalidOperation:
            price = None
        if price is None:
            problems.append(f"price: {value!r} is not a number")
            return None
    if not price.is_finite() or price < 0 or price >= MAX_PRICE:
        problems.append(f"price: {value!r} must be a non-negative amount below {MAX_PRICE:,.0f}")
        return None
    if price != price.quantize(Decimal("0.01")):
        problems.append(f"price: {value!r} has more than 2 decimal places")
        return None
    return price.quantize(Decimal("0.01"))


def stock_field(value: Any, problems: list[str]) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and re.fullmatch(r"\d+(\.0+)?", value.strip()):
        value = int(Decimal(value.strip()))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append(f"stock: {value!r} must be a whole number ≥ 0")
        return 0
    stock: int = value
    return stock


def _attributes(value: Any, problems: list[str]) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):  # CSV carries attributes as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(f"attributes: not valid JSON ({exc.msg})")
            return {}
        except RecursionError:
            problems.append("attributes: not valid JSON (nested too deeply)")
            return {}
    if not isinstance(value, Mapping):
        problems.append("attributes: must be a JSON object")
        return {}
    return dict(value)


def _check_attributes(attributes: Mapping[str, Any], problems: list[str]) -> None:
    """The APIs' bounds: at most ``MAX_ATTRIBUTES`` names, storable text of bounded size, finite numbers, and
    (feeds carry lists such as sizes) shallow, short lists and objects; every problem names its attribute."""
    if len(attributes) > MAX_ATTRIBUTES:
        count = len(attributes)
        problems.append(f"attributes: {count} attributes (extra columns included); the limit is {MAX_ATTRIBUTES}")
        return
    for key, value in attributes.items():
        name = str(key)
        where = f"attributes.{name[:40]}"
        if len(name) > MAX_ATTRIBUTE_NAME_CHARS:
            problems.append(f"{where}: the name is longer than {MAX_ATTRIBUTE_NAME_CHARS} characters")
        elif (bad := unstorable_problem(name)) is not None:
            problems.append(f"{where}: the name {bad}")
        else:
            problem = _attribute_value_problem(value, 0)
            if problem is not None:
                problems.append(f"{where}: {problem}")


def _attribute_value_problem(value: Any, depth: int) -> str | None:
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_CHARS:
            return f"longer than {MAX_ATTRIBUTE_CHARS} characters ({len(value)})"
        return unstorable_problem(value)
    if isinstance(value, list | dict):
        if depth >= MAX_ATTRIBUTE_DEPTH:
            return f"nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"
        if len(value) > MAX_ATTRIBUTE_ITEMS:
            return f"more than {MAX_ATTRIBUTE_ITEMS} items"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (len(key) > MAX_ATTRIBUTE_NAME_CHARS or unstorable_problem(key)):
                return f"the name {key[:40]!r} is too long or cannot be stored"
            problem = _attribute_value_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return f"must be text, a number, or a short list, got {type(value).__name__}"


def availability_field(value: Any, problems: list[str]) -> int | None:
    """``in stock`` → 1, ``out of stock`` → 0: feeds without a count still filter as in/out of stock."""
    if value is None or value == "":
        return None
    text = str(value).strip().casefold()
    if text in _IN_STOCK:
        return 1
    if text in _OUT_OF_STOCK:
        return 0
    problems.append(f"availability: {value!r} must be one of 'in stock', 'out of stock', 'preorder', 'backorder'")
    return None


def _category(value: Any, problems: list[str]) -> tuple[str | None, str | None, str | None]:
    text = text_field(value, "category", problems, max_len=1000, required=True)
    if text is None:
        return None, None, None
    try:
        ref = parse_category(text)
    except ValueError as exc:
        problems.append(str(exc))
        return None, None, None
    return ref.slug, ref.name, ref.path


def extra_fields(raw: Mapping[str, Any]) -> list[str]:
    """Fields outside the schema: kept as attributes, listed once per file as a warning."""
    return sorted(str(k) for k in raw if k not in FIELDS and k != AVAILABILITY)


def _image(value: Any, problems: list[str]) -> str | None:
    image = text_field(value, "image", problems, max_len=1000)
    if image is None:
        return None
    if not (image.startswith(("https://", "http://")) or (image.startswith("/") and not image.startswith("//"))):
        problems.append("image: must be an http(s) URL or a site path starting with /")
        return None
    return image


def validate_row(raw: Any, defaults: Mapping[str, str] | None = None) -> ProductRecord:
    """A ``ProductRecord``, or ``RowProblems`` listing every problem in the row.

    ``defaults`` fill ``language``/``currency`` for feeds that set them once per file
    (Merchant Center, Shopify). Fields outside the schema become attributes.
    """
    if not isinstance(raw, Mapping):
        raise RowProblems([f"expected an object with the fields {', '.join(REQUIRED)}"])
    problems: list[str] = []
    defaults = defaults or {}

    sku = text_field(raw.get("sku"), "sku", problems, max_len=64, required=True)
    if sku and not _SKU.match(sku):
        problems.append(f"sku: {sku!r} may only use letters, digits, '.', '_' and '-'")
    title = text_field(raw.get("title"), "title", problems, max_len=500, required=True)
    description = text_field(raw.get("description"), "description", problems, max_len=20_000) or ""
    amount, price_currency = split_price(raw.get("price"))
    price = price_field(amount, problems)
    given_currency = raw.get("currency") or price_currency or defaults.get("currency")
    currency = text_field(given_currency, "currency", problems, max_len=3)
    if currency is None and not any(p.startswith("currency") for p in problems):
        problems.append("currency: required (in the price like '19.99 USD', a currency column, or --currency)")
    if currency and currency not in known_currencies():
        problems.append(f"currency: {currency!r} is not an ISO 4217 code (e.g. USD, EUR, CNY)")
    elif currency and price_currency and price_currency != currency:
        problems.append(f"price: {raw.get('price')!r} is in {price_currency} but currency says {currency}")
    category, category_name, category_path = _category(raw.get("category"), problems)
    language = text_field(raw.get("language") or defaults.get("language"), "language", problems, max_len=3)
    if language is None and not any(p.startswith("language") for p in problems):
        problems.append("language: required (a language column, or --language for the whole file)")
    if language and not is_known_language(language):
        problems.append(f"language: {language!r} is not an ISO 639-1 code (e.g. en, zh, es, ar)")
    brand = text_field(raw.get("brand"), "brand", problems, max_len=200)
    in_stock = availability_field(raw.get(AVAILABILITY), problems)
    # Neither a count nor an availability: unknown (None), buyable without a badge, never "0 in stock".
    stock = stock_field(raw.get("stock"), problems) if raw.get("stock") not in (None, "") else in_stock
    attributes = _attributes(raw.get("attributes"), problems)
    for name in extra_fields(raw):
        value = raw[name]
        if value not in (None, "") and name not in attributes:
            attributes[name] = value
    if raw.get(AVAILABILITY) not in (None, ""):
        attributes[AVAILABILITY] = str(raw[AVAILABILITY]).strip().casefold()
    _check_attributes(attributes, problems)
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
        category_name=category_name,
        category_path=category_path,
    )
