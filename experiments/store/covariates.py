"""CUPED's covariate in SQL: each exposed unit's activity in the days before its first exposure.

For every exposed unit, its events (any experiment or none) that the server *received* in
``[exposed_at - window, exposed_at)`` are counted (``exposed_at`` is server time too; the client's ``ts`` is never
used here, so a shopper whose clock runs behind does not have the experiment's own events counted as history)
(impressions, clicks, purchases, revenue in the reporting currency) and multiplied with the unit's in-experiment
totals from ``unit_day_rollups``; the per-(variant, language) sums are
:class:`experiments.stats.PrePeriodAggregates`. Units without any history count with zeros, so the unit count
equals the report's. The pre-period cannot depend on the variant (it happened before assignment), which is what
keeps the adjusted lift unbiased.

Runs on SQLite and PostgreSQL; the join walks ``ix_events_unit_type`` per exposed unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from experiments.stats import PrePeriodAggregates
from experiments.store.aggregate import REPORT_WORK_MEM, UNKNOWN_LANGUAGE
from experiments.store.experiment_models import Exposure
from experiments.store.models import Event, UnitDayRollup

#: GrowthBook's default lookback for CUPED's pre-exposure window.
DEFAULT_WINDOW_DAYS = 14


class days_before(FunctionElement[Any]):
    """``timestamp - n days`` (``n`` a literal int), in each dialect's own date arithmetic."""

    inherit_cache = True


@compiles(days_before, "postgresql")
def _days_before_postgresql(element: days_before, compiler: Any, **kw: Any) -> str:
    timestamp, days = list(element.clauses)
    return f"({compiler.process(timestamp, **kw)} - make_interval(days => {compiler.process(days, **kw)}))"


@compiles(days_before, "sqlite")
def _days_before_sqlite(element: days_before, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text; datetime() keeps that ordering.
    timestamp, days = list(element.clauses)
    return f"datetime({compiler.process(timestamp, **kw)}, '-' || {compiler.process(days, **kw)} || ' days')"


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def pre_period_report(
    session: Session,
    experiment: str,
    rates: Mapping[str, float],
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> dict[tuple[str, str], PrePeriodAggregates]:
    """Pre-exposure sums keyed by ``(language, variant)``, the keys of ``AbReport.by_language``."""
    if not isinstance(window_days, int) or window_days < 1:
        raise ValueError(f"window_days must be a positive integer, got {window_days!r}")
    rollup = UnitDayRollup
    rollup_rate = case({code: rate for code, rate in rates.items()}, value=rollup.currency, else_=0.0) if rates else 0.0
    post = (
        select(
            rollup.unit_id.label("unit_id"),
            cast(func.sum(rollup.impressions), Float).label("imp"),
            cast(func.sum(rollup.clicks), Float).label("clk"),
            func.sum(rollup.purchases).label("pur"),
            cast(func.sum(rollup.revenue * rollup_rate), Float).label("rev"),
        )
        .where(rollup.experiment == experiment)
        .group_by(rollup.unit_id)
        .subquery("post")
    )
    event_rate = case({code: rate for code, rate in rates.items()}, value=Event.currency, else_=0.0) if rates else 0.0
    pre = (
        select(
            Exposure.unit_id.label("unit_id"),
            cast(_count_if(Event.type == "impression"), Float).label("imp"),
            cast(_count_if(Event.type == "click"), Float).label("clk"),
            _count_if(Event.type == "purchase").label("pur"),
            cast(
                func.sum(case((Event.type == "purchase", cast(Event.order_value, Float) * event_rate), else_=0.0)),
                Float,
            ).label("rev"),
        )
        .select_from(Exposure)
        .join(
            Event,
            and_(
                Event.unit_id == Exposure.unit_id,
                Event.type.in_(("impression", "click", "purchase")),
                # Server receive time on both sides: a client clock running behind would otherwise date the
                # experiment's own first events before the exposure and count them as history (issue 23).
                Event.received_at < Exposure.exposed_at,
                Event.received_at >= days_before(Exposure.exposed_at, window_days),
            ),
        )
        .where(Exposure.experiment == experiment)
        .group_by(Exposure.unit_id)
        .subquery("pre")
    )
    zero = 0.0
    p_imp, p_clk, p_rev = (func.coalesce(c, zero) for c in (pre.c.imp, pre.c.clk, pre.c.rev))
    y_imp, y_clk, y_rev = (func.coalesce(c, zero) for c in (post.c.imp, post.c.clk, post.c.rev))
    pre_converted = func.coalesce(pre.c.pur, 0) > 0
    post_converted = func.coalesce(post.c.pur, 0) > 0
    language = func.coalesce(Exposure.language, UNKNOWN_LANGUAGE).label("language")
    statement = (
        select(
            language,
            Exposure.variant,
            func.count(),
            func.sum(p_imp),
            func.sum(p_imp * p_imp),
            func.sum(p_imp * y_imp),
            func.sum(p_clk),
            func.sum(p_clk * p_clk),
            func.sum(p_clk * y_clk),
            _count_if(pre_converted),
            _count_if(and_(pre_converted, post_converted)),
            func.sum(p_rev),
            func.sum(p_rev * p_rev),
            func.sum(p_rev * y_rev),
            _count_if(pre.c.unit_id.is_not(None)),
        )
        .select_from(Exposure)
        .outerjoin(post, post.c.unit_id == Exposure.unit_id)
        .outerjoin(pre, pre.c.unit_id == Exposure.unit_id)
        .where(Exposure.experiment == experiment)
        .group_by(language, Exposure.variant)
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))  # as the report: no on-disk hashes
    out: dict[tuple[str, str], PrePeriodAggregates] = {}
    # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
    rows: Iterable[tuple[Any, ...]] = session.execute(statement)
    for lang, variant, units, *sums in rows:
        imp, imp_sq, imp_x, clk, clk_sq, clk_x, converted, converted_x, rev, rev_sq, rev_x, active = (
            float(v or 0) for v in sums
        )
        out[(lang, variant)] = PrePeriodAggregates(
            int(units),
            imp,
            imp_sq,
            imp_x,
            clk,
            clk_sq,
            clk_x,
            int(converted),
            int(converted_x),
            rev,
            rev_sq,
            rev_x,
            int(active),
        )
    return out
