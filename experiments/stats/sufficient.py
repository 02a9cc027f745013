"""Per-variant sufficient statistics: everything the tests need, computable in SQL with SUM and COUNT.

The analysis unit is the randomisation unit (visitor or API user), so the SQL layer first rolls events up per
unit and then sums those per-unit values per variant. No row is ever loaded into Python.

Variance conventions follow gbstats (GrowthBook's engine) so our numbers match it: sample variances divide by
``n - 1``; a proportion's variance is ``p (1 - p)`` without the ``n / (n - 1)`` factor; a ratio metric's variance
is the per-unit delta-method variance of ``sum_x / sum_y``.

The ``*_moments`` functions take floats or numpy arrays alike, so simulations can evaluate thousands of
experiments in one call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

ArrayLike = Any  # float or numpy array; the moment functions broadcast


def _safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> ArrayLike:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1.0), 0.0)
    return out


def mean_moments(n: ArrayLike, total: ArrayLike, sum_squares: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Sample mean and ``n - 1`` sample variance (0 when ``n <= 1``), as gbstats ``SampleMeanStatistic``."""
    n = np.asarray(n, dtype=float)
    mean = _safe_divide(total, n)
    variance = np.where(
        n > 1, _safe_divide(np.asarray(sum_squares) - np.square(total) / np.where(n > 0, n, 1), n - 1), 0
    )
    return mean, variance


def proportion_moments(n: ArrayLike, successes: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Rate and ``p (1 - p)``, as gbstats ``ProportionStatistic``."""
    rate = _safe_divide(successes, n)
    return rate, rate * (1 - rate)


def ratio_moments(
    n: ArrayLike, sum_x: ArrayLike, sum_x2: ArrayLike, sum_y: ArrayLike, sum_y2: ArrayLike, sum_xy: ArrayLike
) -> tuple[ArrayLike, ArrayLike]:
    """``sum_x / sum_y`` and its per-unit delta-method variance, as gbstats ``RatioStatistic``.

    With per-unit means ``mx, my``, variances ``vx, vy`` and covariance ``c`` (all ``n - 1``), the variance of the
    ratio for one unit is ``vx/my^2 - 2 c mx/my^3 + mx^2 vy/my^4``; dividing by ``n`` gives the squared standard
    error of the ratio of sums (Deng et al. 2018, "Applying the Delta Method in Metric Analytics").
    """
    n_arr = np.asarray(n, dtype=float)
    mean_x, var_x = mean_moments(n_arr, sum_x, sum_x2)
    mean_y, var_y = mean_moments(n_arr, sum_y, sum_y2)
    covariance = np.where(
        n_arr > 1,
        _safe_divide(
            np.asarray(sum_xy) - np.asarray(sum_x) * np.asarray(sum_y) / np.where(n_arr > 0, n_arr, 1), n_arr - 1
        ),
        0,
    )
    ratio = _safe_divide(sum_x, sum_y)
    safe_my = np.where(mean_y != 0, mean_y, 1.0)
    variance = np.where(
        (mean_y != 0) & (n_arr > 1),
        var_x / safe_my**2 - 2 * covariance * mean_x / safe_my**3 + mean_x**2 * var_y / safe_my**4,
        0,
    )
    return ratio, variance


@dataclass(frozen=True)
class MeanStats:
    """A per-unit numeric metric (revenue per unit, clicks per unit): ``n`` units, ``sum`` and ``sum_squares``."""

    n: int
    sum: float
    sum_squares: float

    @classmethod
    def from_values(cls, values: Iterable[float]) -> MeanStats:
        array = np.asarray(list(values), dtype=float)
        return cls(int(array.size), float(array.sum()), float(np.square(array).sum()))

    def __add__(self, other: MeanStats) -> MeanStats:
        return MeanStats(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)

    @property
    def mean(self) -> float:
        return float(mean_moments(self.n, self.sum, self.sum_squares)[0])

    @property
    def variance(self) -> float:
        return float(mean_moments(self.n, self.sum, self.sum_squares)[1])

    @property
    def unadjusted_mean(self) -> float:
        """The mean a relative lift is a fraction of; differs from ``mean`` only for CUPED statistics."""
        return self.mean

    @property
    def numerator(self) -> float:
        return self.sum

    @property
    def denominator(self) -> float:
        return float(self.n)


@dataclass(frozen=True)
class ProportionStats:
    """A per-unit yes/no metric (converted units / units)."""

    n: int
    successes: float

    def __post_init__(self) -> None:
        if self.successes < 0 or self.successes > self.n:
            raise ValueError(f"successes must be within [0, n]; got {self.successes} of {self.n}")

    @classmethod
    def from_values(cls, values: Iterable[bool | int]) -> ProportionStats:
        array = np.asarray(list(values), dtype=bool)
        return cls(int(array.size), float(array.sum()))

    def __add__(self, other: ProportionStats) -> ProportionStats:
        return ProportionStats(self.n + other.n, self.successes + other.successes)

    @property
    def mean(self) -> float:
        return float(proportion_moments(self.n, self.successes)[0])

    @property
    def variance(self) -> float:
        return float(proportion_moments(self.n, self.successes)[1])

    @property
    def unadjusted_mean(self) -> float:
        """The mean a relative lift is a fraction of; differs from ``mean`` only for CUPED statistics."""
        return self.mean

    @property
    def numerator(self) -> float:
        return self.successes

    @property
    def denominator(self) -> float:
        return float(self.n)


@dataclass(frozen=True)
class PooledProportionStats(ProportionStats):
    """A proportion whose variance is the pooled ``p(1-p)`` of both arms (the two-proportion z-test's null
    variance): how the sequential and Bayesian views test an arm with no purchase at all, where an arm's own
    variance is zero and the Welch-type tests refuse."""

    pooled_rate: float = 0.0

    @property
    def variance(self) -> float:
        return self.pooled_rate * (1 - self.pooled_rate)


@dataclass(frozen=True)
class PooledMeanStats(MeanStats):
    """A per-unit mean whose variance is the pooled variance of both arms (Student's t): how an arm without any
    spread (no revenue at all) is still compared, as the revenue guardrail's pooled t-test does."""

    pooled_variance: float = 0.0

    @property
    def variance(self) -> float:
        return self.pooled_variance


@dataclass(frozen=True)
class RatioStats:
    """A ratio of per-unit sums with the unit as analysis unit, e.g. CTR = clicks / impressions.

    ``x`` is the per-unit numerator (clicks), ``y`` the per-unit denominator (impressions); ``sum_xy`` is the sum
    of their per-unit products, needed for the covariance term of the delta method.
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float
    sum_y2: float
    sum_xy: float

    @classmethod
    def from_values(cls, x: Iterable[float], y: Iterable[float]) -> RatioStats:
        xs = np.asarray(list(x), dtype=float)
        ys = np.asarray(list(y), dtype=float)
        if xs.shape != ys.shape:
            raise ValueError("numerator and denominator need one value per unit each")
        return cls(
            int(xs.size),
            float(xs.sum()),
            float(np.square(xs).sum()),
            float(ys.sum()),
            float(np.square(ys).sum()),
            float((xs * ys).sum()),
        )

    def __add__(self, other: RatioStats) -> RatioStats:
        return RatioStats(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_y + other.sum_y,
            self.sum_y2 + other.sum_y2,
            self.sum_xy + other.sum_xy,
        )

    def _moments(self) -> tuple[float, float]:
        ratio, variance = ratio_moments(self.n, self.sum_x, self.sum_x2, self.sum_y, self.sum_y2, self.sum_xy)
        return float(ratio), float(variance)

    @property
    def mean(self) -> float:
        return self._moments()[0]

    @property
    def variance(self) -> float:
        return self._moments()[1]

    @property
    def unadjusted_mean(self) -> float:
        """The mean a relative lift is a fraction of; differs from ``mean`` only for CUPED statistics."""
        return self.mean

    @property
    def numerator(self) -> float:
        return self.sum_x

    @property
    def denominator(self) -> float:
        return self.sum_y


MetricStats = MeanStats | RatioStats | ProportionStats


@overload
def empty_like(stats: MeanStats) -> MeanStats: ...
@overload
def empty_like(stats: ProportionStats) -> ProportionStats: ...
@overload
def empty_like(stats: RatioStats) -> RatioStats: ...
def empty_like(stats: MetricStats) -> MetricStats:
    """Zero-unit statistics of the same kind, for a variant that has no traffic in some slice."""
    own = getattr(stats, "empty_like", None)  # composite kinds built on these (CUPED) say how they empty
    if callable(own):
        same_kind: MetricStats = own()
        return same_kind
    if isinstance(stats, MeanStats):
        return MeanStats(0, 0.0, 0.0)
    if isinstance(stats, ProportionStats):
        return ProportionStats(0, 0.0)
    return RatioStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
