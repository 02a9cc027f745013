"""What each variant's searches really served, from the impressions: delivery counts and search-quality sums.

Impressions carry what their search answered (``rerank_status``, scorer kind and model, ``rerank_depth``,
server time ``search_ms``, ``result_count``) and the variant that served it (clicks inherit it from their
impression at ingestion). That variant is the unit's assignment (sticky, the same as its exposure), so these
queries read the events alone, without joining the exposures: at a million events that join was most of their
time. Two ``GROUP BY`` queries over the experiment's impressions and clicks:

- :func:`delivery_counts`: impressions per (variant, status, scorer kind, scorer model, depth, whole
  millisecond of server time), which also gives each variant's latency histogram (:func:`latency_histogram`);
- :func:`quality_sums`: per-unit counts (searches, zero-result searches, searches slower than a threshold,
  timed searches, products shown, clicks) summed per variant with their squares and cross products, i.e. the
  sufficient statistics of ratio metrics with the shopper as the analysis unit (delta method).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from experiments.stats import RatioStats
from experiments.store.models import Event


@dataclass(frozen=True)
class DeliveryCount:
    variant: str
    rerank_status: str | None
    scorer_kind: str | None
    scorer_model: str | None
    rerank_depth: int | None
    impressions: int
    search_ms: int | None = None  # whole milliseconds (rounded down)


def delivery_counts(session: Session, experiment: str) -> list[DeliveryCount]:
    millisecond = (
        cast(func.floor(Event.search_ms), Integer) if _is_postgresql(session) else cast(Event.search_ms, Integer)
    )
    columns = (Event.variant, Event.rerank_status, Event.scorer_kind, Event.scorer_model, Event.rerank_depth)
    query = (
        select(*columns, millisecond, func.count())
        .where(Event.experiment == experiment, Event.type == "impression", Event.variant.is_not(None))
        .group_by(*columns, millisecond)
    )
    return [
        DeliveryCount(
            variant,
            status,
            kind,
            model,
            None if depth is None else int(depth),
            int(count),
            None if ms is None else int(ms),
        )
        for variant, status, kind, model, depth, ms, count in session.execute(query)
        if variant is not None  # always: the query keeps only rows with a variant
    ]


def latency_histogram(counts: Iterable[DeliveryCount]) -> dict[str, dict[int, int]]:
    """variant → {whole milliseconds: impressions}, from :func:`delivery_counts`."""
    out: dict[str, dict[int, int]] = {}
    for row in counts:
        if row.search_ms is not None:
            histogram = out.setdefault(row.variant, {})
            histogram[row.search_ms] = histogram.get(row.search_ms, 0) + row.impressions
    return out


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


#: The per-variant ratio metrics :func:`quality_sums` returns, as (numerator, denominator) per-unit counts.
QUALITY_RATIOS = {
    "product_ctr": ("clicks", "products"),
    "zero_result_rate": ("zero", "searches"),
    "slow_search_share": ("slow", "timed"),
}


def quality_sums(session: Session, experiment: str, slow_ms: float | None) -> dict[str, dict[str, RatioStats]]:
    """variant → {metric of :data:`QUALITY_RATIOS`: RatioStats over the units that searched}.

    ``slow_ms`` is the threshold of a "slow" search (the report uses control's p95); None counts none as slow.
    """
    impression = Event.type == "impression"

    def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    threshold = slow_ms if slow_ms is not None else float("inf")
    per_unit = (
        select(
            Event.variant.label("variant"),
            cast(count_if(impression), Float).label("searches"),
            cast(count_if(and_(impression, Event.result_count == 0)), Float).label("zero"),
            cast(count_if(and_(impression, Event.search_ms.is_not(None))), Float).label("timed"),
            cast(count_if(and_(impression, Event.search_ms > threshold)), Float).label("slow")
            if slow_ms is not None
            else cast(func.sum(0), Float).label("slow"),
            cast(func.sum(case((impression, func.coalesce(Event.result_count, 0)), else_=0)), Float).label("products"),
            cast(count_if(Event.type == "click"), Float).label("clicks"),
        )
        .where(Event.experiment == experiment, Event.type.in_(("impression", "click")), Event.variant.is_not(None))
        .group_by(Event.variant, Event.unit_id)
        .subquery("per_unit")
    )
    u = per_unit.c
    sums = []
    for numerator, denominator in QUALITY_RATIOS.values():
        x, y = u[numerator], u[denominator]
        sums += [func.sum(x), func.sum(x * x), func.sum(y), func.sum(y * y), func.sum(x * y)]
    query = select(u.variant, func.count(), *sums).where(u.searches > 0).group_by(u.variant)
    out: dict[str, dict[str, RatioStats]] = {}
    # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
    rows: Iterable[tuple[Any, ...]] = session.execute(query)
    for variant, units, *values in rows:
        metrics: dict[str, RatioStats] = {}
        for index, metric in enumerate(QUALITY_RATIOS):
            part = [float(v or 0) for v in values[index * 5 : index * 5 + 5]]
            metrics[metric] = RatioStats(int(units), *part)
        out[variant] = metrics
    return out


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a whole-millisecond histogram (lower nearest rank); None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, -(-q * total // 1))  # ceil(q * total), at least the first
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return float(ms)
    return float(max(histogram))
