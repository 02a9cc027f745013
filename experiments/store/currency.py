"""Revenue in one reporting currency: purchases arrive in the shopper's currency (USD, EUR, JPY, ...).

The rates are a static, dated table (no network at run time), applied at query time, so changing them
(``SHOPRANK_FX_RATES``) re-prices history consistently in every variant. A purchase in a currency without a
rate still counts as a conversion; the report shows how many purchases had no price in the reporting currency.
"""

from __future__ import annotations

from collections.abc import Mapping

#: US dollars per unit of each currency; approximate mid-market rates, January 2025.
USD_PER_UNIT: Mapping[str, float] = {
    "USD": 1.0,
    "EUR": 1.04,
    "GBP": 1.24,
    "CHF": 1.10,
    "JPY": 0.0064,
    "CNY": 0.137,
    "KRW": 0.00069,
    "INR": 0.0116,
    "RUB": 0.0098,
    "SAR": 0.266,
    "AED": 0.272,
    "BRL": 0.165,
    "MXN": 0.049,
    "CAD": 0.70,
    "AUD": 0.62,
    "SEK": 0.091,
    "NOK": 0.088,
    "DKK": 0.14,
    "PLN": 0.245,
    "TRY": 0.028,
    "HKD": 0.128,
    "SGD": 0.73,
    "TWD": 0.030,
    "THB": 0.029,
    "ZAR": 0.054,
}


def parse_rates(raw: str) -> dict[str, float]:
    """``"EUR=1.08,JPY=0.0067"`` → ``{"EUR": 1.08, "JPY": 0.0067}``; raises ValueError on a malformed entry."""
    rates: dict[str, float] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        code, sep, value = part.partition("=")
        code = code.strip().upper()
        if not sep or len(code) != 3 or not code.isalpha():
            raise ValueError(f"FX rate {part!r}: expected CODE=RATE, e.g. EUR=1.08")
        rate = float(value)
        if not rate > 0:
            raise ValueError(f"FX rate {part!r} must be positive")
        rates[code] = rate
    return rates


def reporting_rates(reporting_currency: str = "USD", overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Units of ``reporting_currency`` per unit of each known currency (``overrides`` are already in it)."""
    reporting_currency = reporting_currency.upper()
    if reporting_currency not in USD_PER_UNIT and reporting_currency not in (overrides or {}):
        raise ValueError(f"no exchange rate for the reporting currency {reporting_currency}")
    base = USD_PER_UNIT.get(reporting_currency)
    rates = {code: usd / base for code, usd in USD_PER_UNIT.items()} if base else {}
    rates.update(overrides or {})
    rates[reporting_currency] = 1.0
    return rates
