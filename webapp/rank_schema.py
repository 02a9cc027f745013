"""``POST /api/rank`` request validation, Flask-free: every problem is a 4xx naming its field.

Top-level fields fail one at a time with their own code (``invalid_top_n``, ``too_many_candidates``…);
candidates are checked all at once and a single 422 ``invalid_candidates`` lists every problem as
``candidates[3].price: …``, so a client fixes its mapping in one pass. Unknown fields inside a candidate are
errors (a misspelt ``descripton`` would otherwise rank silently without its description); unknown top-level
fields are ignored, as in the rerank APIs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from catalog.validation import MAX_ATTRIBUTE_CHARS, MAX_ATTRIBUTES, MAX_PRICE, known_currencies
from search.supplied import Candidate, CatalogRef, InlineProduct, generated_sku
from shoprank.languages import is_known_language
from shoprank.storable_text import unstorable_character
from webapp.errors import ApiError

INLINE_FIELDS = (
    "sku",
    "title",
    "description",
    "price",
    "currency",
    "language",
    "brand",
    "category",
    "image",
    "stock",
    "attributes",
)
#: Longest values accepted, in characters (the catalog importer's limits; a sku as the events API stores it).
MAX_CHARS = {"sku": 64, "title": 500, "description": 20_000, "brand": 200, "category": 200, "image": 1000}
MAX_USER_CHARS = 128
MAX_REPORTED_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class RankRequest:
    query: str
    language: str | None
    user: str | None
    market: str | None
    candidates: list[Candidate]
    top_n: int | None


def _invalid(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


def _optional_string(body: Mapping[str, Any], name: str, code: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(code, f"{name} must be a string, got {type(value).__name__}")
    bad = unstorable_character(value)
    if bad is not None:
        raise _invalid(code, f"{name} contains the control character {bad}")
    return value


def _query(body: Mapping[str, Any]) -> str:
    """Type and characters here; emptiness and length are the search's own rule (``clean_query``)."""
    if "query" not in body or body["query"] is None:
        raise _invalid("empty_query", "query is required: what the shopper typed")
    return _optional_string(body, "query", "invalid_query") or ""


def _top_n(body: Mapping[str, Any], maximum: int) -> int | None:
    value: object = body.get("top_n")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _invalid("invalid_top_n", f"top_n must be a whole number between 1 and {maximum}, got {value!r:.40}")
    return value


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _text(raw: Mapping[str, Any], name: str, where: str, problems: _Problems, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(f"{where}.{name}", "required, and not empty")
        return None
    if not isinstance(value, str):
        problems.add(f"{where}.{name}", f"must be a string, got {type(value).__name__}")
        return None
    value = value.strip()
    limit = MAX_CHARS[name]
    if len(value) > limit:
        problems.add(f"{where}.{name}", f"has {len(value)} characters; the limit is {limit}")
        return None
    bad = unstorable_character(value)
    if bad is not None:
        problems.add(f"{where}.{name}", f"contains the control character {bad}")
        return None
    return value


def _price(raw: Mapping[str, Any], where: str, problems: _Problems) -> Decimal | None:
    value = raw.get("price")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.add(f"{where}.price", f"must be a number, got {type(value).__name__}")
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0 or price >= MAX_PRICE:
        problems.add(f"{where}.price", f"must be a non-negative amount below {MAX_PRICE:,.0f}, got {value!r:.40}")
        return None
    return price


def _stock(raw: Mapping[str, Any], where: str, problems: _Problems) -> int | None:
    value: object = raw.get("stock")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(f"{where}.stock", f"must be a whole number >= 0, got {value!r:.40}")
        return None
    return value


def _attributes(raw: Mapping[str, Any], where: str, problems: _Problems) -> dict[str, Any]:
    value = raw.get("attributes")
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_ATTRIBUTES:
        problems.add(f"{where}.attributes", f"must be an object of at most {MAX_ATTRIBUTES} name: value pairs")
        return {}
    for key, item in value.items():
        text = item if isinstance(item, str) else None
        if not isinstance(item, str | int | float) or (text is not None and len(text) > MAX_ATTRIBUTE_CHARS):
            problems.add(f"{where}.attributes.{key:.40}", f"must be a string (<= {MAX_ATTRIBUTE_CHARS}) or a number")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.add(f"{where}.attributes.{key:.40}", "must be a finite number")
        elif unstorable_character(key) or (text is not None and unstorable_character(text)):
            problems.add(f"{where}.attributes.{key:.40}", "contains a control character")
    return dict(value)


def _inline(raw: Mapping[str, Any], index: int, where: str, problems: _Problems) -> InlineProduct | None:
    before = len(problems.items)
    unknown = sorted(str(key) for key in raw if key not in INLINE_FIELDS)
    if unknown:
        problems.add(where, f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(INLINE_FIELDS)}")
    sku = _text(raw, "sku", where, problems)
    title = _text(raw, "title", where, problems, required=True)
    price = _price(raw, where, problems)
    currency = raw.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency not in known_currencies()):
        problems.add(f"{where}.currency", f"must be an ISO 4217 code such as USD or EUR, got {currency!r:.40}")
    elif price is not None and currency is None:
        problems.add(f"{where}.currency", "required with price (an ISO 4217 code such as USD or EUR)")
    language = raw.get("language")
    if language is not None and not (isinstance(language, str) and is_known_language(language)):
        problems.add(f"{where}.language", f"must be an ISO 639-1 code such as en, zh or ar, got {language!r:.40}")
    product = InlineProduct(
        index=index,
        sku=sku or generated_sku(index),
        title=title or "",
        description=_text(raw, "description", where, problems) or "",
        price=price,
        currency=currency,
        language=language,
        brand=_text(raw, "brand", where, problems),
        category=_text(raw, "category", where, problems),
        image=_text(raw, "image", where, problems),
        stock=_stock(raw, where, problems),
        attributes=_attributes(raw, where, problems),
    )
    return product if len(problems.items) == before else None


def _candidates(body: Mapping[str, Any], maximum: int) -> list[Candidate]:
    raw = body.get("candidates")
    if not isinstance(raw, list):
        raise _invalid("invalid_candidates", "candidates is required: a list of skus or {title, ...} objects")
    if len(raw) > maximum:
        raise ApiError(
            413, "too_many_candidates", f"{len(raw)} candidates in one request; the limit is {maximum}. Send fewer."
        )
    problems = _Problems()
    candidates: list[Candidate] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(raw):
        where = f"candidates[{index}]"
        candidate: Candidate | None
        if isinstance(entry, str):
            candidate = CatalogRef(index, _text({"sku": entry}, "sku", where, problems, required=True) or "")
            candidate = candidate if candidate.sku else None
        elif isinstance(entry, Mapping):
            candidate = _inline(entry, index, where, problems)
        else:
            problems.add(where, f"must be a sku string or a product object, got {type(entry).__name__}")
            candidate = None
        if candidate is None:
            continue
        if candidate.sku in first_index:
            problems.add(where, f"repeats the sku {candidate.sku!r} of candidates[{first_index[candidate.sku]}]")
            continue
        first_index[candidate.sku] = index
        candidates.append(candidate)
    if problems.items:
        count = len(problems.items)
        raise ApiError(
            422,
            "invalid_candidates",
            f"{problems.items[0]}" + (f" (and {count - 1} more problems)" if count > 1 else ""),
            details=problems.items[:MAX_REPORTED_PROBLEMS],
        )
    return candidates


def parse_rank_request(body: Mapping[str, Any], *, max_candidates: int, max_top_n: int) -> RankRequest:
    """``{query, lang?, user?, market?, candidates: [sku | {title, ...}], top_n?}`` → ``RankRequest``.

    ``lang`` and ``market`` are only type-checked here; the search API's own parsers judge their values.
    """
    query = _query(body)
    user = _optional_string(body, "user", "invalid_user")
    if user is not None and len(user) > MAX_USER_CHARS:
        raise _invalid("invalid_user", f"user must be at most {MAX_USER_CHARS} characters")
    return RankRequest(
        query=query,
        language=_optional_string(body, "lang", "unknown_language"),
        user=user,
        market=_optional_string(body, "market", "invalid_market"),
        candidates=_candidates(body, max_candidates),
        top_n=_top_n(body, max_top_n),
    )
