"""URL parameters of a shopper's search (``/search`` and ``/api/search`` read the same ones): filters, price
range, sort and page. A bad value is a 400 naming the parameter, never a silently ignored filter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from werkzeug.datastructures import MultiDict

from search.filters import FxRates, PriceBound, SearchFilters
from search.shop_search import SORTS, ShopQuery
from shoprank.languages import is_known_language
from webapp.errors import ApiError

MAX_PAGE = 1000
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class SearchParams:
    filters: SearchFilters
    currency: str
    sort: str
    page: int
    per_page: int

    def query(
        self, text: str, *, language: str | None, unit_id: str | None, request_id: str, surface: str, market: str | None
    ) -> ShopQuery:
        """The search these parameters ask for, with the words as typed and who is asking."""
        return ShopQuery(
            text=text,
            currency=self.currency,
            language=language,
            filters=self.filters,
            sort=self.sort,
            page=self.page,
            per_page=self.per_page,
            unit_id=unit_id,
            request_id=request_id,
            surface=surface,
            market=market,
        )


def _values(args: MultiDict[str, str], name: str) -> list[str]:
    """``brand=Sony&brand=Bose`` and ``brand=Sony,Bose`` alike (brands with a comma use the repeated form)."""
    raw = args.getlist(name)
    if len(raw) == 1 and "," in raw[0]:
        raw = raw[0].split(",")
    return [value.strip() for value in raw if value.strip()]


def _whole(args: MultiDict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a whole number, got {raw[:20]!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{name}", f"{name} must be between {low} and {high}, got {value}")
    return value


def _amount(args: MultiDict[str, str], name: str) -> Decimal | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a number such as 49.99, got {raw[:20]!r}") from None
    if not value.is_finite() or value < 0 or value > Decimal("1e12"):
        raise ApiError(400, f"invalid_{name}", f"{name} must be a price between 0 and 10^12, got {raw[:20]!r}")
    return value


def parse_currency(raw: str | None, fx: FxRates, default: str) -> str:
    if raw is None or raw.strip() == "":
        return default
    code = raw.strip().upper()
    if len(code) != 3 or not code.isalpha() or not fx.knows(code):
        raise ApiError(400, "invalid_currency", f"currency={raw[:20]!r} is not a currency with an exchange rate")
    return code


def parse_bool(args: MultiDict[str, str], name: str) -> bool:
    raw = (args.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ApiError(400, f"invalid_{name}", f"{name} must be true or false, got {raw[:20]!r}")


def parse_search_params(
    args: MultiDict[str, str], *, fx: FxRates, default_currency: str, default_per_page: int, max_per_page: int
) -> SearchParams:
    """Everything but ``q``/``lang``/``user``/``market``; ``limit`` (the older name) still sets the page size."""
    currency = parse_currency(args.get("currency"), fx, default_currency)
    legacy = _whole(args, "limit", default_per_page, 1, max_per_page)
    per_page = _whole(args, "per_page", legacy, 1, max_per_page)
    page = _whole(args, "page", 1, 1, MAX_PAGE)
    sort = (args.get("sort") or "relevance").strip()
    if sort not in SORTS:
        raise ApiError(400, "invalid_sort", f"sort must be one of {', '.join(SORTS)}, got {sort[:20]!r}")
    low, high = _amount(args, "min_price"), _amount(args, "max_price")
    if low is not None and high is not None and low > high:
        raise ApiError(400, "invalid_price_range", f"min_price ({low}) is above max_price ({high})")
    categories = _values(args, "category")
    for category in categories:
        if not _CATEGORY.match(category):
            raise ApiError(400, "invalid_category", f"category={category[:40]!r} is not a category slug")
    brands = _values(args, "brand")
    if any(len(brand) > 100 for brand in brands) or len(brands) > 50:
        raise ApiError(400, "invalid_brand", "brand: at most 50 brands of at most 100 characters")
    languages = _values(args, "language_of_listing")
    for language in languages:
        if not is_known_language(language):
            raise ApiError(
                400, "invalid_language_of_listing", f"language_of_listing={language[:20]!r} is not an ISO 639-1 code"
            )
    filters = SearchFilters.of(
        categories=categories,
        brands=brands,
        languages=languages,
        in_stock=parse_bool(args, "in_stock"),
        min_price=None if low is None else PriceBound(low, currency),
        max_price=None if high is None else PriceBound(high, currency),
    )
    return SearchParams(filters, currency, sort, page, per_page)
