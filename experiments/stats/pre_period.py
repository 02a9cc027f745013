"""Pre-exposure sums per variant, and the CUPED-adjusted metric statistics they turn shoprank's metrics into.

Each per-unit metric is adjusted with *the same metric* measured on the unit's activity in the days before its
first exposure (GrowthBook's default covariate): impressions with past impressions, clicks with past clicks,
conversion with "bought anything before", revenue with past revenue. CTR is a ratio metric, which gbstats 0.8.0
does not adjust, so it stays unadjusted. Like :class:`experiments.stats.UnitAggregates`, everything is a sum over
units that SQL returns (``experiments.store.covariates``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from experiments.stats.analysis import UnitAggregates
from experiments.stats.cuped import RegressionAdjustedStats
from experiments.stats.sufficient import MeanStats, MetricStats, ProportionStats

#: The metrics CUPED adjusts (per-unit means and proportions); the rest of ``UnitAggregates.metrics()`` is kept.
ADJUSTED_METRICS = ("conversion_rate", "revenue_per_unit", "clicks_per_unit", "impressions_per_unit")


@dataclass(frozen=True)
class PrePeriodAggregates:
    """Per-variant sums of each unit's pre-exposure values, and of their products with its in-experiment values.

    ``*_x_post`` is ``SUM(pre * post)`` per unit, e.g. ``clicks_x_post`` = sum over units of (clicks before
    exposure) * (clicks in the experiment); ``converted_x_post`` counts units that converted in both periods.
    """

    units: int
    impressions: float = 0.0
    impressions_sq: float = 0.0
    impressions_x_post: float = 0.0
    clicks: float = 0.0
    clicks_sq: float = 0.0
    clicks_x_post: float = 0.0
    converted_units: int = 0
    converted_x_post: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0
    revenue_x_post: float = 0.0

    active_units: int = 0  # units with any event before exposure: how much history CUPED had to work with

    def __add__(self, other: PrePeriodAggregates) -> PrePeriodAggregates:
        return PrePeriodAggregates(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def adjusted_metrics(post: UnitAggregates, pre: PrePeriodAggregates) -> dict[str, MetricStats]:
    """``post.metrics()`` with the per-unit metrics replaced by their regression-adjusted statistics."""
    if post.units != pre.units:
        raise ValueError(f"pre-period sums cover {pre.units} units, the experiment {post.units}")
    metrics: dict[str, MetricStats] = dict(post.metrics())
    n = post.units
    adjusted = {
        "conversion_rate": RegressionAdjustedStats(
            ProportionStats(n, post.converted_units), ProportionStats(n, pre.converted_units), pre.converted_x_post
        ),
        "revenue_per_unit": RegressionAdjustedStats(
            MeanStats(n, post.revenue, post.revenue_sq), MeanStats(n, pre.revenue, pre.revenue_sq), pre.revenue_x_post
        ),
        "clicks_per_unit": RegressionAdjustedStats(
            MeanStats(n, post.clicks, post.clicks_sq), MeanStats(n, pre.clicks, pre.clicks_sq), pre.clicks_x_post
        ),
        "impressions_per_unit": RegressionAdjustedStats(
            MeanStats(n, post.impressions, post.impressions_sq),
            MeanStats(n, pre.impressions, pre.impressions_sq),
            pre.impressions_x_post,
        ),
    }
    metrics.update(adjusted)  # type: ignore[arg-type]  # RegressionAdjustedStats has MetricStats' interface
    return metrics
