"""Which currency a shopper thinks in: the market's (the browser's region, ``es-MX`` → MXN), else the UI
language's, else US dollars. The page lets the shopper switch; this is only the starting point."""

from __future__ import annotations

from search.filters import FxRates

DEFAULT_CURRENCY = "USD"

LANGUAGE_CURRENCY: dict[str, str] = {
    "en": "USD",
    "es": "EUR",
    "de": "EUR",
    "fr": "EUR",
    "it": "EUR",
    "pt": "EUR",
    "zh": "CNY",
    "ja": "JPY",
    "ko": "KRW",
    "ar": "SAR",
    "ru": "RUB",
}

MARKET_CURRENCY: dict[str, str] = {
    "US": "USD", "GB": "GBP", "DE": "EUR", "ES": "EUR", "FR": "EUR", "IT": "EUR", "PT": "EUR", "NL": "EUR",
    "BE": "EUR", "AT": "EUR", "IE": "EUR", "FI": "EUR", "GR": "EUR", "CH": "CHF", "JP": "JPY", "CN": "CNY",
    "KR": "KRW", "RU": "RUB", "SA": "SAR", "AE": "AED", "BR": "BRL", "MX": "MXN", "CA": "CAD", "AU": "AUD",
    "IN": "INR", "HK": "HKD", "SG": "SGD", "TW": "TWD", "SE": "SEK", "NO": "NOK", "DK": "DKK", "PL": "PLN",
    "TR": "TRY", "TH": "THB", "ZA": "ZAR",
}  # fmt: skip


def shopper_currency(language: str | None, market: str | None, fx: FxRates) -> str:
    """The default display and price-filter currency for this shopper (always one ``fx`` can convert)."""
    for candidate in (MARKET_CURRENCY.get((market or "").upper()), LANGUAGE_CURRENCY.get(language or "")):
        if candidate and fx.knows(candidate):
            return candidate
    return DEFAULT_CURRENCY
