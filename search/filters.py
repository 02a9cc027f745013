"""What a shopper narrowed the search to: categories, brands, listing languages, stock and a price range.

One value object travels from the HTTP layer (URL parameters, a price cap recognised in the query text)
into the first stage, which applies it *inside* retrieval: a filtered search ranks the best matching
products, instead of cutting the unfiltered top 100 down to the few that happen to match.

Prices are compared in one reference currency through the one FX table the experiments' revenue
conversion uses (``SHOPRANK_FX_RATES`` overrides), so "under 50 €" keeps a 5,000 ¥ listing that costs 32 €.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from catalog.stock import is_out_of_stock
from experiments.store.currency import reporting_rates

#: The currency the index stores comparable prices in; any currency with a rate works the same.
REFERENCE_CURRENCY = "USD"


class FxRates:
    """Converts amounts between currencies through one table of rates into ``REFERENCE_CURRENCY``.

    ``rate(code)`` is the number of reference units per unit of ``code``; a currency without a
    rate cannot be compared, so filters treat such a listing as outside any price range.
    """

    def __init__(self, overrides: Mapping[str, float] | None = None) -> None:
        self._rates = reporting_rates(REFERENCE_CURRENCY, overrides)

    def rate(self, currency: str) -> float | None:
        return self._rates.get(currency.upper())

    def knows(self, currency: str) -> bool:
        return currency.upper() in self._rates

    def to_reference(self, amount: float | Decimal, currency: str) -> float | None:
        rate = self.rate(currency)
        return None if rate is None else float(amount) * rate

    def convert(self, amount: float | Decimal, source: str, target: str) -> float | None:
        """``amount`` of ``source`` in ``target``; None when either currency has no rate."""
        source_rate, target_rate = self.rate(source), self.rate(target)
        if source_rate is None or target_rate is None:
            return None
        return float(amount) * source_rate / target_rate


@dataclass(frozen=True, slots=True)
class PriceBound:
    amount: Decimal
    currency: str


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().casefold() for v in values if v and v.strip())


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Conjunction of facets; an empty set means "any". Brands compare case-insensitively."""

    categories: frozenset[str] = field(default_factory=frozenset)
    brands: frozenset[str] = field(default_factory=frozenset)
    languages: frozenset[str] = field(default_factory=frozenset)
    in_stock: bool = False
    min_price: PriceBound | None = None
    max_price: PriceBound | None = None

    @classmethod
    def of(
        cls,
        *,
        categories: Iterable[str] = (),
        brands: Iterable[str] = (),
        languages: Iterable[str] = (),
        in_stock: bool = False,
        min_price: PriceBound | None = None,
        max_price: PriceBound | None = None,
    ) -> SearchFilters:
        return cls(
            frozenset(c.strip() for c in categories if c and c.strip()),
            _folded(brands),
            frozenset(lang.strip().lower() for lang in languages if lang and lang.strip()),
            in_stock,
            min_price,
            max_price,
        )

    def is_empty(self) -> bool:
        return not (
            self.categories
            or self.brands
            or self.languages
            or self.in_stock
            or self.min_price is not None
            or self.max_price is not None
        )

    def reference_price_range(self, fx: FxRates) -> tuple[float | None, float | None]:
        """The bounds in ``REFERENCE_CURRENCY`` (a bound in a currency without a rate is a 4xx upstream)."""
        low = None if self.min_price is None else fx.to_reference(self.min_price.amount, self.min_price.currency)
        high = None if self.max_price is None else fx.to_reference(self.max_price.amount, self.max_price.currency)
        return low, high

    def matches(
        self,
        *,
        category: str,
        brand: str | None,
        language: str,
        stock: int | None,
        reference_price: float | None,
        fx: FxRates,
    ) -> bool:
        """One product against every facet (the index evaluates the same rule column-wise)."""
        if self.categories and category not in self.categories:
            return False
        if self.brands and (brand or "").strip().casefold() not in self.brands:
            return False
        if self.languages and language.lower() not in self.languages:
            return False
        if self.in_stock and is_out_of_stock(stock):  # unknown stock is kept: buyable, the feed said nothing
            return False
        low, high = self.reference_price_range(fx)
        if low is None and high is None:
            return True
        if reference_price is None:
            return False
        # Bound and listing in the same currency convert by the same rate, so "under 50 €" keeps a 50.00 € listing.
        if low is not None and reference_price < low:
            return False
        return not (high is not None and reference_price > high)
