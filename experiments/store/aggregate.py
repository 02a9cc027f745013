"""Experiment reports in SQL: per-unit rollups summed per variant, per language and per day. No rows in Python.

The analysis unit is the randomisation unit, so events are first rolled up per exposed unit, then summed into the
sufficient statistics of :class:`experiments.stats.UnitAggregates` (``SUM(x)``, ``SUM(x*x)``, ``SUM(x*y)``).

**One pass for totals, languages and days.** Events are rolled up per (unit, day); a window function turns them
into each unit's running totals ``C``. The cumulative statistics at the end of day ``d`` need ``SUM_u C_u(d)^2``,
which is not a sum of daily squares, but it *is* the sum over days ``t <= d`` of each unit's increment
``C_u(t)^2 - C_u(t-1)^2``; with ``C_u(t-1) = C_u(t) - x_u(t)`` that increment is computed row by row. So a single
``GROUP BY variant, language, day`` returns increments whose prefix sums over days are the exact cumulative
statistics, and whose sums over everything are the final ones (the per-language rows add up to the total).
Units enter on the day of their first event (client clocks date events; the exposure is dated by the server when
the first search ran), or, without any event yet, on the day of their exposure.

**Which events count.** A unit's events carry the experiment they were served under (impressions by the page,
clicks, carts and purchases inherit it from their impression at ingestion), and the unit's variant comes from the
server-side exposure log, never from what a page sent (intention to treat). Units without events count with zeros.
Revenue is converted to the reporting currency at query time (:mod:`experiments.store.currency`).

The A/B report reads ``unit_day_rollups`` (kept by ingestion, one row per unit, day and purchase currency)
rather than the raw events: the same numbers from a fraction of the rows. Interleaving credit needs the stored
impression items, so it joins the events. Runs unchanged on SQLite (>= 3.25, window functions) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Date, Float, and_, case, cast, func, or_, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from experiments.stats import UnitAggregates
from experiments.store.experiment_models import Exposure
from experiments.store.models import Event, ImpressionItem, UnitDayRollup

UNKNOWN_LANGUAGE = "unknown"
REPORT_WORK_MEM = "64MB"


class utc_day(FunctionElement[Any]):
    """The UTC calendar day of a timestamp (a ``date`` on PostgreSQL, ``'YYYY-MM-DD'`` text on SQLite)."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass
class AbReport:
    """Sufficient statistics of an A/B experiment, by (language, variant) and per day (cumulative)."""

    by_language: dict[tuple[str, str], UnitAggregates] = field(default_factory=dict)
    #: day → variant → statistics of everything up to the end of that day
    cumulative: dict[dt.date, dict[str, UnitAggregates]] = field(default_factory=dict)
    unpriced_purchases: int = 0

    def totals(self) -> dict[str, UnitAggregates]:
        out: dict[str, UnitAggregates] = {}
        for (_, variant), stats in self.by_language.items():
            out[variant] = out[variant] + stats if variant in out else stats
        return out


_FIELDS = (
    "units",
    "impressions",
    "impressions_sq",
    "clicks",
    "clicks_sq",
    "clicks_x_impressions",
    "converted_units",
    "revenue",
    "revenue_sq",
)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def ab_report(session: Session, experiment: str, rates: Mapping[str, float]) -> AbReport:
    """One GROUP BY over exposures joined to the per-unit-day rollups: increments per (variant, language, day),
    including the units entering that day."""
    rollup = UnitDayRollup
    # Most rollup rows are the impressions-and-clicks row (currency ''): decide those first, before the
    # per-currency rate lookup.
    priced = case({code: rate for code, rate in rates.items()}, value=rollup.currency, else_=0.0) if rates else 0.0
    rate = case((rollup.currency == "", 0.0), else_=priced)
    unpriced = case(
        (rollup.currency == "", 0),
        (rollup.currency.in_(list(rates)), 0),
        else_=rollup.purchases,
    )
    # No GROUP BY before the window: a unit's rows (one per day and purchase currency) come in primary-key order,
    # which is the window's order, and the increments f(C_k) - f(C_k - x_k) telescope over a day's rows too.
    rows = (
        select(
            rollup.unit_id.label("unit_id"),
            rollup.day.label("day"),
            rollup.currency.label("currency"),
            cast(rollup.impressions, Float).label("imp"),  # float8: numeric squares are slow on PostgreSQL
            cast(rollup.clicks, Float).label("clk"),
            cast(rollup.purchases, Float).label("pur"),
            cast(rollup.revenue * rate, Float).label("rev"),
            unpriced.label("unpriced"),
        )
        .where(rollup.experiment == experiment)
        .subquery("unit_day")
    )
    window: dict[str, Any] = {"partition_by": rows.c.unit_id, "order_by": (rows.c.day, rows.c.currency)}
    running = select(
        rows,
        func.sum(rows.c.imp).over(**window).label("c_imp"),
        func.sum(rows.c.clk).over(**window).label("c_clk"),
        func.sum(rows.c.pur).over(**window).label("c_pur"),
        func.sum(rows.c.rev).over(**window).label("c_rev"),
        func.row_number().over(**window).label("nth"),
    ).subquery("running")
    r = running.c
    language = func.coalesce(Exposure.language, UNKNOWN_LANGUAGE).label("language")
    # Exposed units without any event yet have no rollup rows: the outer join keeps them, on their exposure day.
    day = func.coalesce(r.day, utc_day(Exposure.exposed_at)).label("day")
    zero = 0.0
    statistics = (
        select(
            Exposure.variant,
            language,
            day,
            _count_if(or_(r.nth == 1, r.unit_id.is_(None))),  # a unit enters on its first event's day
            func.coalesce(func.sum(r.imp), zero),
            func.coalesce(func.sum(r.c_imp * r.c_imp - (r.c_imp - r.imp) * (r.c_imp - r.imp)), zero),
            func.coalesce(func.sum(r.clk), zero),
            func.coalesce(func.sum(r.c_clk * r.c_clk - (r.c_clk - r.clk) * (r.c_clk - r.clk)), zero),
            func.coalesce(func.sum(r.c_clk * r.c_imp - (r.c_clk - r.clk) * (r.c_imp - r.imp)), zero),
            _count_if(and_(r.c_pur > 0, r.c_pur == r.pur)),  # the unit's first purchase
            func.coalesce(func.sum(r.rev), zero),
            func.coalesce(func.sum(r.c_rev * r.c_rev - (r.c_rev - r.rev) * (r.c_rev - r.rev)), zero),
            func.coalesce(func.sum(r.unpriced), 0),
        )
        .select_from(Exposure)
        .outerjoin(running, r.unit_id == Exposure.unit_id)
        .where(Exposure.experiment == experiment)
        .group_by(Exposure.variant, language, day)
    )

    if session.get_bind().dialect.name == "postgresql":
        # The planner cannot estimate the groups of COALESCE(day, exposure day) and, with the default 4 MB, sorts
        # and joins on disk at a million events; this transaction's report may use more memory.
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    daily: dict[tuple[str, str, dt.date], list[float]] = {}
    unpriced_total = 0
    # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
    sums: Iterable[tuple[Any, ...]] = session.execute(statistics)
    for variant, lang, when, *values in sums:
        row = daily.setdefault((variant, lang, _as_date(when)), [0.0] * len(_FIELDS))
        for index, value in enumerate(values[:-1]):
            row[index] += float(value or 0)
        unpriced_total += int(values[-1] or 0)
    return _assemble(daily, unpriced_total)


def _aggregates(values: Iterable[float]) -> UnitAggregates:
    values = list(values)
    return UnitAggregates(
        units=int(round(values[0])),
        impressions=values[1],
        impressions_sq=values[2],
        clicks=values[3],
        clicks_sq=values[4],
        clicks_x_impressions=values[5],
        converted_units=int(round(values[6])),
        revenue=values[7],
        revenue_sq=values[8],
    )


def _assemble(daily: dict[tuple[str, str, dt.date], list[float]], unpriced: int) -> AbReport:
    report = AbReport(unpriced_purchases=unpriced)
    by_language: dict[tuple[str, str], list[float]] = {}
    per_day: dict[dt.date, dict[str, list[float]]] = {}
    for (variant, lang, day), values in daily.items():
        total = by_language.setdefault((lang, variant), [0.0] * len(_FIELDS))
        day_row = per_day.setdefault(day, {}).setdefault(variant, [0.0] * len(_FIELDS))
        for index, value in enumerate(values):
            total[index] += value
            day_row[index] += value
    report.by_language = {key: _aggregates(values) for key, values in sorted(by_language.items())}
    running: dict[str, list[float]] = {}
    for day in sorted(per_day):
        for variant, values in per_day[day].items():
            acc = running.setdefault(variant, [0.0] * len(_FIELDS))
            for index, value in enumerate(values):
                acc[index] += value
        report.cumulative[day] = {variant: _aggregates(values) for variant, values in running.items()}
    return report


# --- interleaving --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    wins_a: int = 0
    wins_b: int = 0
    ties: int = 0

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(self.wins_a + other.wins_a, self.wins_b + other.wins_b, self.ties + other.ties)

    @property
    def total(self) -> int:
        return self.wins_a + self.wins_b + self.ties


@dataclass
class InterleavingReport:
    #: (language, day) → impression-level outcomes that day
    impressions: dict[tuple[str, dt.date], Outcomes] = field(default_factory=dict)
    #: language → unit-level outcomes (each unit reduced to the team that won more of its impressions)
    units: dict[str, Outcomes] = field(default_factory=dict)
    exposed_units: int = 0

    def by_language(self) -> dict[str, Outcomes]:
        out: dict[str, Outcomes] = {}
        for (language, _), outcomes in self.impressions.items():
            out[language] = out.get(language, Outcomes()) + outcomes
        return dict(sorted(out.items()))

    def total(self) -> Outcomes:
        return sum(self.impressions.values(), Outcomes())

    def unit_total(self) -> Outcomes:
        return sum(self.units.values(), Outcomes())

    def cumulative(self) -> dict[dt.date, Outcomes]:
        per_day: dict[dt.date, Outcomes] = {}
        for (_, day), outcomes in self.impressions.items():
            per_day[day] = per_day.get(day, Outcomes()) + outcomes
        out: dict[dt.date, Outcomes] = {}
        running = Outcomes()
        for day in sorted(per_day):
            running = running + per_day[day]
            out[day] = running
        return out


def interleaving_report(session: Session, experiment: str) -> InterleavingReport:
    """Per impression: distinct clicked products credited to each team via the stored impression's items."""
    click = aliased(Event)
    impression = aliased(Event)
    credited = (
        select(
            click.impression_id.label("impression_id"),
            _count_if(ImpressionItem.team == "A").label("a"),
            _count_if(ImpressionItem.team == "B").label("b"),
        )
        .select_from(click)
        .join(
            ImpressionItem,
            and_(ImpressionItem.impression_id == click.impression_id, ImpressionItem.sku == click.sku),
        )
        .where(click.experiment == experiment, click.type == "click", ImpressionItem.team.in_(("A", "B")))
        # each clicked product once: clicking it twice does not double its team's credit
        .group_by(click.impression_id, ImpressionItem.position)
        .subquery("credited_item")
    )
    per_impression = (
        select(
            impression.unit_id.label("unit_id"),
            utc_day(impression.occurred_at).label("day"),
            func.coalesce(func.sum(case((credited.c.a > 0, 1), else_=0)), 0).label("a"),
            func.coalesce(func.sum(case((credited.c.b > 0, 1), else_=0)), 0).label("b"),
        )
        .select_from(impression)
        .outerjoin(credited, credited.c.impression_id == impression.event_id)
        .where(impression.experiment == experiment, impression.type == "impression")
        .group_by(impression.event_id, impression.unit_id, utc_day(impression.occurred_at))
        .subquery("per_impression")
    )
    p = per_impression.c
    language = func.coalesce(Exposure.language, UNKNOWN_LANGUAGE).label("language")
    by_day = (
        select(language, p.day, _count_if(p.a > p.b), _count_if(p.b > p.a), _count_if(p.a == p.b))
        .select_from(per_impression)
        .join(Exposure, and_(Exposure.experiment == experiment, Exposure.unit_id == p.unit_id))
        .group_by(language, p.day)
    )
    per_unit = (
        select(
            p.unit_id.label("unit_id"),
            _count_if(p.a > p.b).label("wa"),
            _count_if(p.b > p.a).label("wb"),
        )
        .group_by(p.unit_id)
        .subquery("per_unit")
    )
    u = per_unit.c
    by_unit = (
        select(language, _count_if(u.wa > u.wb), _count_if(u.wb > u.wa), _count_if(u.wa == u.wb))
        .select_from(per_unit)
        .join(Exposure, and_(Exposure.experiment == experiment, Exposure.unit_id == u.unit_id))
        .group_by(language)
    )
    report = InterleavingReport()
    # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
    days: Iterable[tuple[Any, ...]] = session.execute(by_day)
    for lang, day, a, b, tie in days:
        report.impressions[(lang, _as_date(day))] = Outcomes(int(a), int(b), int(tie))
    units: Iterable[tuple[Any, ...]] = session.execute(by_unit)  # as above
    for lang, a, b, tie in units:
        report.units[lang] = Outcomes(int(a), int(b), int(tie))
    report.exposed_units = int(
        session.scalar(select(func.count()).select_from(Exposure).where(Exposure.experiment == experiment)) or 0
    )
    return report
