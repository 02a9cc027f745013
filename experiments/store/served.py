"""What each variant's searches really served, from the impressions: delivery counts and search-quality sums.

Impressions carry what their search answered (``rerank_status``, scorer kind and model, ``rerank_depth``,
server time ``search_ms``, ``result_count``); each is attributed to the variant of its unit's exposure (the
server's assignment, as in the A/B report). Two small ``GROUP BY`` queries and one per-unit rollup:

- :func:`delivery_counts`: impressions per (variant, status, scorer kind, scorer model, depth);
- :func:`latency_histogram`: impressions per (variant, whole millisecond) for the percentiles;
- :func:`quality_sums`: per-unit counts (searches, zero-result searches, searches slower than a threshold,
  timed searches, products shown, clicks) summed per variant with their squares and cross products, i.e. the
  sufficient statistics of ratio metrics with the shopper as the analysis unit (delta method).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Float, Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from experiments.stats import RatioStats
from experiments.store.experiment_models import Exposure
from experiments.store.models import Event


@dataclass(frozen=True)
class DeliveryCount:
    variant: str
    rerank_status: str | None
    scorer_kind: str | None
    scorer_model: str | None
    rerank_depth: int | None
    impressions: int


def _joined(experiment: str):  # type: ignore[no-untyped-def]
    return and_(Exposure.experiment == experiment, Exposure.unit_id == Event.unit_id)


def delivery_counts(session: Session, experiment: str) -> list[DeliveryCount]:
    columns = (Exposure.variant, Event.rerank_status, Event.scorer_kind, Event.scorer_model, Event.rerank_depth)
    query = (
        select(*columns, func.count())
        .select_from(Event)
        .join(Exposure, _joined(experiment))
        .where(Event.experiment == experiment, Event.type == "impression")
        .group_by(*columns)
    )
    return [
        DeliveryCount(variant, status, kind, model, None if depth is None else int(depth), int(count))
        for variant, status, kind, model, depth, count in session.execute(query)
    ]


def latency_histogram(session: Session, experiment: str) -> dict[str, dict[int, int]]:
    """variant → {whole milliseconds (rounded down): impressions}."""
    millisecond = (
        cast(func.floor(Event.search_ms), Integer) if _is_postgresql(session) else cast(Event.search_ms, Integer)
    )
    query = (
        select(Exposure.variant, millisecond, func.count())
        .select_from(Event)
        .join(Exposure, _joined(experiment))
        .where(Event.experiment == experiment, Event.type == "impression", Event.search_ms.is_not(None))
        .group_by(Exposure.variant, millisecond)
    )
    out: dict[str, dict[int, int]] = {}
    for variant, ms, count in session.execute(query):
        out.setdefault(variant, {})[int(ms)] = int(count)
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

    def count_if(condition):  # type: ignore[no-untyped-def]
        return func.sum(case((condition, 1), else_=0))

    threshold = slow_ms if slow_ms is not None else float("inf")
    per_unit = (
        select(
            Exposure.variant.label("variant"),
            cast(count_if(impression), Float).label("searches"),
            cast(count_if(and_(impression, Event.result_count == 0)), Float).label("zero"),
            cast(count_if(and_(impression, Event.search_ms.is_not(None))), Float).label("timed"),
            cast(count_if(and_(impression, Event.search_ms > threshold)), Float).label("slow")
            if slow_ms is not None
            else cast(func.sum(0), Float).label("slow"),
            cast(func.sum(case((impression, func.coalesce(Event.result_count, 0)), else_=0)), Float).label("products"),
            cast(count_if(Event.type == "click"), Float).label("clicks"),
        )
        .select_from(Event)
        .join(Exposure, _joined(experiment))
        .where(Event.experiment == experiment, Event.type.in_(("impression", "click")))
        .group_by(Exposure.variant, Event.unit_id)
        .subquery("per_unit")
    )
    u = per_unit.c
    sums = []
    for numerator, denominator in QUALITY_RATIOS.values():
        x, y = u[numerator], u[denominator]
        sums += [func.sum(x), func.sum(x * x), func.sum(y), func.sum(y * y), func.sum(x * y)]
    query = select(u.variant, func.count(), *sums).where(u.searches > 0).group_by(u.variant)
    out: dict[str, dict[str, RatioStats]] = {}
    for variant, units, *values in session.execute(query):
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
