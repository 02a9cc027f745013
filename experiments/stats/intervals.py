"""The one interval a comparison shows: the relative lift's, consistent with the p-value that decides.

A report that prints a p-value from one test beside an interval from another (or an unadjusted interval beside
a Holm-adjusted p-value) can say "significant" and "includes zero" on the same row. Every view of shoprank
(experiment page, list, per-language table, chart, CSV) therefore shows this interval only:

- fixed horizon: a *test-based* interval (Miettinen's construction, also how GrowthBook widens its intervals
  for multiple-testing corrections): ``estimate ± |estimate| · q(1 - alpha/2) / q(1 - p/2)`` where ``p`` is the
  deciding p-value after the correction (Holm) and ``q`` the quantile function of the deciding test (Student's
  t with Welch–Satterthwaite df for Welch tests, the normal for the two-proportion z-test). It excludes 0
  exactly when ``p < alpha``; with one treatment and a Welch test it is the Welch interval of the relative
  lift scaled to the absolute test's statistic;
- always-valid (sequential) mode: the confidence sequence at ``alpha / m`` (Bonferroni), which is what the
  always-valid p-values support;
- a relative lift cannot fall below -100 % for the non-negative metrics shoprank reports: the lower end is
  clipped there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as scipy_stats

#: How the interval was corrected for several treatments.
CORRECTION_NAMES = {"holm": "Holm-adjusted", "bonferroni": "Bonferroni-widened", "none": "no correction needed"}


@dataclass(frozen=True)
class Interval:
    """A relative-lift interval at ``level`` with the correction that made it consistent with the shown p."""

    lower: float
    upper: float
    level: float
    correction: str  # "holm" | "bonferroni" | "none" (named by CORRECTION_NAMES)
    kind: str = "confidence"  # "confidence" | "sequence" (always valid) | "credible" (Bayesian posterior)


def _quantile(upper_tail: float, df: float | None) -> float:
    """The value a statistic exceeds with probability ``upper_tail`` (t with ``df``, else normal)."""
    if df is not None and math.isfinite(df) and df > 0:
        return float(scipy_stats.t.isf(upper_tail, df))
    return float(scipy_stats.norm.isf(upper_tail))


def decision_interval(
    estimate: float,
    p_value: float,
    *,
    alpha: float,
    df: float | None,
    correction: str,
    floor: float | None = -1.0,
) -> Interval | None:
    """``estimate ± |estimate| q(1-alpha/2) / q(1-p/2)``: excludes 0 exactly when ``p_value < alpha``.

    ``floor`` clips the lower end (-1: a relative lift of a non-negative metric; None for absolute lifts).
    ``None`` when no finite interval follows (a zero estimate, or a p-value of 1: the data do not bound it).
    """
    if not (math.isfinite(estimate) and math.isfinite(p_value)) or estimate == 0 or not 0 < p_value < 1:
        return None
    observed = _quantile(p_value / 2, df)
    if observed <= 0 or not math.isfinite(observed):
        return None
    half_width = abs(estimate) * _quantile(alpha / 2, df) / observed
    lower = estimate - half_width
    return Interval(_floor(lower, estimate, floor), estimate + half_width, 1 - alpha, correction)


def _floor(lower: float, estimate: float, floor: float | None) -> float:
    """Clip at ``floor`` but never above the estimate: a regression-adjusted estimate can fall just below -100 %,
    and an interval that leaves out its own estimate would contradict the number beside it."""
    if floor is None:
        return lower
    return max(lower, min(floor, estimate))


def clipped(
    lower: float,
    upper: float,
    *,
    alpha: float,
    correction: str,
    estimate: float | None = None,
    kind: str = "confidence",
) -> Interval | None:
    """An interval computed elsewhere (sequential mode, the posterior), clipped at -100 %; ``None`` when not finite."""
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    return Interval(
        _floor(lower, estimate if estimate is not None else lower, -1.0), upper, 1 - alpha, correction, kind
    )
