"""Search analytics per query, in SQL over the event store: what merchandisers look at first.

Which queries are searched most, which return nothing or almost nothing, which get shown results but no clicks,
and how far down shoppers click; overall or split by variant, for one language or all, over a date range.

Only impressions the server itself answered count: ``signed`` ones, whose id this server issued for the query (or
listing kind) and product count they carry (:mod:`experiments.store.impression_ids`). Client-made ids, and real
ids reported with another query, are stored for the experiment reports but are not searches here.

Definitions (those of hosted search analytics):

- a *search* is one stored signed impression (one results page shown); its query is compared case-insensitively, with
  surrounding spaces trimmed; impressions of listings without a query (a category or brand page, deals, home:
  ``listing`` set) are not searches and are counted apart, per kind (:func:`listing_views`);
- *no results*: the impression listed no products (``result_count = 0``); *few results*: 1..``few`` products;
- *CTR*: searches with at least one click / searches (clicks reach their search through ``impression_id``);
- *mean click position*: the average 1-based rank of the clicked products.

Every function is one aggregate query; no event row reaches Python. Clicks are first rolled up per impression
(``ix_events_impression_id`` joins them back), then the impressions of the range (``ix_events_occurred_at``) are
grouped by query. Clicks are taken from ``start`` on (a click never precedes its search) with no upper bound, so a
search near the end of the range keeps the clicks that came just after it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Float, Select, String, and_, case, cast, func, literal_column, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from experiments.store.aggregate import REPORT_WORK_MEM
from experiments.store.models import Event
from shoprank.db import SQLITE_UNICODE_LOWER

ALL = "all"  # the variant label of rows that are not split by variant
NO_VARIANT = "none"  # the variant label of searches outside any experiment
Ranking = Literal["top", "no_results", "few_results", "low_ctr"]
RANKINGS: tuple[Ranking, ...] = ("top", "no_results", "few_results", "low_ctr")


@dataclass(frozen=True)
class Filters:
    """Which searches count: ``[start, end)`` in UTC, optionally one shopper language and one experiment."""

    start: dt.datetime
    end: dt.datetime
    language: str | None = None
    experiment: str | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("end must be after start")


@dataclass(frozen=True)
class QueryRow:
    query: str
    variant: str  # ALL unless split by variant
    searches: int
    no_results: int
    few_results: int
    clicked_searches: int
    clicks: int
    click_position_sum: float
    positioned_clicks: int  # clicks that carried their position
    mean_result_count: float

    @property
    def ctr(self) -> float | None:
        return self.clicked_searches / self.searches if self.searches else None

    @property
    def no_result_rate(self) -> float | None:
        return self.no_results / self.searches if self.searches else None

    @property
    def mean_click_position(self) -> float | None:
        return self.click_position_sum / self.positioned_clicks if self.positioned_clicks else None


@dataclass(frozen=True)
class SkuClicks:
    sku: str
    variant: str
    clicks: int
    mean_position: float | None


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def normalize_query(text: str) -> str:
    """How queries are grouped: case-insensitive, trimmed (what ``lower(trim(query))`` does in SQL)."""
    return text.strip().lower()


def _variant_of(impression: Any) -> ColumnElement[str]:
    """The impression's variant, ``none`` outside experiments (a literal, so SELECT and GROUP BY match)."""
    return func.coalesce(impression.variant, literal_column(f"'{NO_VARIANT}'"))


class folded(FunctionElement[str]):
    """``lower(x)`` that folds Unicode capitals on every backend: PostgreSQL's lower() does, SQLite's built-in
    folds ASCII only (so "ÖLFILTER" and "ölfilter" were two queries there); SQLite calls the Python function
    :data:`shoprank.db.SQLITE_UNICODE_LOWER` that every connection registers."""

    type = String()
    inherit_cache = True


@compiles(folded)
def _folded_default(element: folded, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(folded, "sqlite")
def _folded_sqlite(element: folded, compiler: Any, **kw: Any) -> str:
    return f"{SQLITE_UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


def _query_key(column: Any) -> ColumnElement[str]:
    return folded(func.trim(column))


def _impressions(filters: Filters, impression: Any, *, listings: bool = False) -> list[ColumnElement[bool]]:
    """Impressions in the range (and language, experiment): of searches, or with ``listings`` of listings."""
    conditions = [
        impression.type == "impression",
        impression.signed.is_(True),  # the server issued its id for this query (or listing): client text is not
        impression.listing.is_not(None) if listings else impression.listing.is_(None),
        impression.occurred_at >= filters.start,
        impression.occurred_at < filters.end,
    ]
    if filters.language:
        conditions.append(impression.language == filters.language)
    if filters.experiment:
        conditions.append(impression.experiment == filters.experiment)
    return conditions


def _clicks_per_impression(filters: Filters, query: str | None = None) -> Any:
    """Clicks, their position sum and count, per impression. Narrow filters (a language, an experiment, one
    query) first pick the impressions, so only their clicks are read (``ix_events_click_impression``); the whole
    range reads every click once in impression order instead, which is cheaper than the semi-join."""
    click = aliased(Event, name="click")
    statement = (
        select(
            click.impression_id.label("impression_id"),
            func.count().label("clicks"),
            func.coalesce(func.sum(click.position), 0).label("position_sum"),
            func.count(click.position).label("positioned"),
        )
        .where(click.type == "click", click.impression_id.is_not(None), click.occurred_at >= filters.start)
        .group_by(click.impression_id)
    )
    if filters.language or filters.experiment or query is not None:
        shown = aliased(Event, name="shown")
        conditions = _impressions(filters, shown)
        if query is not None:
            conditions.append(_query_key(shown.query) == normalize_query(query))
        statement = statement.where(click.impression_id.in_(select(shown.event_id).where(*conditions)))
    return statement.subquery("clicks_per_impression")


def _search_sums(impression: Any, clicks: Any, few: int) -> list[ColumnElement[Any]]:
    """The aggregates every view reads (the fields of :class:`QueryRow` after query and variant)."""
    return [
        func.count().label("searches"),
        _count_if(impression.result_count == 0).label("no_results"),
        _count_if(and_(impression.result_count > 0, impression.result_count <= few)).label("few_results"),
        _count_if(clicks.c.clicks > 0).label("clicked_searches"),
        func.coalesce(func.sum(clicks.c.clicks), 0).label("clicks"),
        cast(func.coalesce(func.sum(clicks.c.position_sum), 0), Float).label("position_sum"),
        func.coalesce(func.sum(clicks.c.positioned), 0).label("positioned"),
        func.avg(cast(impression.result_count, Float)).label("mean_results"),
    ]


def _grouped(filters: Filters, *, per_variant: bool, few: int, query: str | None = None) -> Select[Any]:
    """Per normalised query (and variant): first grouped by the raw text, a cheap hash, then the few thousand raw
    groups are normalised and merged, instead of normalising every search."""
    impression = aliased(Event, name="impression")
    clicks = _clicks_per_impression(filters, query)
    conditions = _impressions(filters, impression)
    if query is not None:
        conditions.append(_query_key(impression.query) == normalize_query(query))
    variant = _variant_of(impression) if per_variant else literal_column(f"'{ALL}'")
    sums = [*_search_sums(impression, clicks, few)[:-1], func.sum(impression.result_count).label("result_sum")]
    raw = (
        select(impression.query.label("raw_query"), variant.label("variant"), *sums)
        .select_from(impression)
        .outerjoin(clicks, clicks.c.impression_id == impression.event_id)
        .where(*conditions)
        .group_by(impression.query, *([variant] if per_variant else []))
        .subquery("per_raw_query")
    )
    r = raw.c
    key = _query_key(r.raw_query).label("query")
    merged = [
        func.sum(r[name]).label(name)
        for name in ("searches", "no_results", "few_results", "clicked_searches", "clicks", "positioned")
    ]
    return select(
        key,
        r.variant,
        *merged,
        cast(func.sum(r.position_sum), Float).label("position_sum"),
        (cast(func.sum(r.result_sum), Float) / func.sum(r.searches)).label("mean_results"),
    ).group_by(key, r.variant)


def _rows(session: Session, statement: Select[Any]) -> list[QueryRow]:
    if session.get_bind().dialect.name == "postgresql":
        # The per-impression click rollup is a hash of ~a quarter of the events; with the default 4 MB it spills
        # to disk at a million events. Same allowance as the experiment report, for this transaction only.
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    return [
        QueryRow(
            query=row.query or "",
            variant=row.variant,
            searches=int(row.searches),
            no_results=int(row.no_results or 0),
            few_results=int(row.few_results or 0),
            clicked_searches=int(row.clicked_searches or 0),
            clicks=int(row.clicks or 0),
            click_position_sum=float(row.position_sum or 0),
            positioned_clicks=int(row.positioned or 0),
            mean_result_count=float(row.mean_results or 0),
        )
        for row in session.execute(statement)
    ]


def query_ranking(
    session: Session,
    filters: Filters,
    ranking: Ranking,
    *,
    limit: int = 20,
    few: int = 3,
    min_searches: int = 10,
) -> list[QueryRow]:
    """One ranked list of queries (not split by variant; the query page splits one query).

    ``top``: most searched. ``no_results``: most searches that listed nothing. ``few_results``: most searches
    that listed 1..``few`` products. ``low_ctr``: lowest CTR among queries searched at least ``min_searches``
    times that did show results (a no-result query has no CTR to improve by ranking).
    """
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}")
    grouped = _grouped(filters, per_variant=False, few=few).subquery("per_query")
    g = grouped.c
    statement = select(grouped)
    if ranking == "top":
        statement = statement.order_by(g.searches.desc(), g.query)
    elif ranking == "no_results":
        statement = statement.where(g.no_results > 0).order_by(g.no_results.desc(), g.query)
    elif ranking == "few_results":
        statement = statement.where(g.few_results > 0).order_by(g.few_results.desc(), g.query)
    else:
        ctr = cast(g.clicked_searches, Float) / g.searches
        statement = statement.where(g.searches >= min_searches, g.searches > g.no_results).order_by(
            ctr, g.searches.desc(), g.query
        )
    return _rows(session, statement.limit(limit))


def overview(session: Session, filters: Filters, *, few: int = 3) -> dict[str, QueryRow]:
    """Totals per variant (impression's variant; ``none`` outside experiments) and ``ALL``: one GROUP BY."""
    impression = aliased(Event, name="impression")
    clicks = _clicks_per_impression(filters)
    variant = _variant_of(impression)
    statement = (
        select(
            literal_column("''").label("query"),
            variant.label("variant"),
            *_search_sums(impression, clicks, few),
        )
        .select_from(impression)
        .outerjoin(clicks, clicks.c.impression_id == impression.event_id)
        .where(*_impressions(filters, impression))
        .group_by(variant)
    )
    per_variant = {row.variant: row for row in _rows(session, statement)}
    total = QueryRow("", ALL, 0, 0, 0, 0, 0, 0.0, 0, 0.0)
    weighted_results = 0.0
    for row in per_variant.values():
        weighted_results += row.mean_result_count * row.searches
        total = replace(
            total,
            searches=total.searches + row.searches,
            no_results=total.no_results + row.no_results,
            few_results=total.few_results + row.few_results,
            clicked_searches=total.clicked_searches + row.clicked_searches,
            clicks=total.clicks + row.clicks,
            click_position_sum=total.click_position_sum + row.click_position_sum,
            positioned_clicks=total.positioned_clicks + row.positioned_clicks,
        )
    total = replace(total, mean_result_count=weighted_results / total.searches if total.searches else 0.0)
    ordered = sorted(per_variant.items(), key=lambda item: (item[0] == NO_VARIANT, item[0]))  # "none" last
    return {ALL: total, **dict(ordered)}


def listing_views(session: Session, filters: Filters) -> dict[str, int]:
    """Impressions of listings without a query (category, brand, deals, home, filters) in the range, per kind."""
    impression = aliased(Event, name="impression")
    conditions = _impressions(filters, impression, listings=True)
    statement = (
        select(impression.listing, func.count())
        .where(*conditions)
        .group_by(impression.listing)
        .order_by(impression.listing)
    )
    return {str(kind): int(count) for kind, count in session.execute(statement)}


def query_by_variant(session: Session, filters: Filters, query: str, *, few: int = 3) -> dict[str, QueryRow]:
    """One query's numbers per variant (the query page's header row)."""
    rows = _rows(session, _grouped(filters, per_variant=True, few=few, query=query))
    return {row.variant: row for row in sorted(rows, key=lambda r: r.variant)}


def clicks_per_sku(session: Session, filters: Filters, query: str, *, limit: int = 200) -> list[SkuClicks]:
    """Clicks each product got from searches for ``query``, per variant, most clicked first."""
    impression = aliased(Event, name="impression")
    click = aliased(Event, name="click")
    variant = _variant_of(impression)
    statement = (
        select(
            click.sku,
            variant.label("variant"),
            func.count().label("clicks"),
            func.avg(cast(click.position, Float)).label("mean_position"),
        )
        .select_from(impression)
        .join(click, and_(click.impression_id == impression.event_id, click.type == "click"))
        .where(*_impressions(filters, impression), _query_key(impression.query) == normalize_query(query))
        .where(click.sku.is_not(None))
        .group_by(click.sku, variant)
        .order_by(func.count().desc(), click.sku)
        .limit(limit)
    )
    return [
        SkuClicks(
            row.sku, row.variant, int(row.clicks), None if row.mean_position is None else float(row.mean_position)
        )
        for row in session.execute(statement)
    ]


def languages(session: Session, filters: Filters) -> list[str]:
    """Shopper languages seen in the range (for the filter menu)."""
    impression = aliased(Event, name="impression")
    unfiltered = replace(filters, language=None)
    statement = (
        select(impression.language)
        .where(*_impressions(unfiltered, impression), impression.language.is_not(None))
        .group_by(impression.language)
        .order_by(impression.language)
    )
    return [value for (value,) in session.execute(statement) if value is not None]  # None: filtered out above
