"""Search analytics pages: which queries matter, which fail, and one query's rankings side by side.

Numbers come from :mod:`experiments.store.search_analytics` (SQL over the event store); the query page also asks
the live search service how each variant ranks the query *now*, with the clicks each product got in the range.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort, render_template, request
from sqlalchemy import select

from experiments.manage import ranking_config
from experiments.ranking import NoExperiment, RankingConfig
from experiments.store import search_analytics as sa
from experiments.store.experiment_models import Experiment
from search.service import SearchInputError, SearchService
from search.shop_search import ShopQuery, ShopSearch
from search.shopper_currency import shopper_currency
from webapp.context import app_services
from webapp.dashboard import auth_users
from webapp.dashboard.blueprint import bp

DEFAULT_DAYS = 14
MAX_DAYS = 366
LIST_LIMIT = 15
RANKED_RESULTS = 10
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


def _bad(field: str, message: str) -> NoReturn:
    abort(400, description=f"{field}: {message}")


def _date(name: str, default: dt.date) -> dt.date:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        return _bad(name, f"expected a date like 2025-01-31, got {raw!r}")


def _filters() -> tuple[sa.Filters, dict[str, Any]]:
    """Range (``from``/``to``, inclusive days, UTC), ``lang`` and ``experiment`` from the query string."""
    today = dt.datetime.now(dt.UTC).date()
    first = _date("from", today - dt.timedelta(days=DEFAULT_DAYS - 1))
    last = _date("to", today)
    if last < first:
        _bad("to", "must not be before from")
    if (last - first).days >= MAX_DAYS:
        _bad("from", f"the range may span at most {MAX_DAYS} days")
    language = request.args.get("lang", "").strip().lower() or None
    if language and not _LANGUAGE.match(language):
        _bad("lang", f"not a language code: {language!r}")
    experiment = request.args.get("experiment", "").strip() or None
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    args = {"from": first.isoformat(), "to": last.isoformat(), "lang": language, "experiment": experiment}
    return sa.Filters(start, end, language, experiment), args


@bp.get("/search-analytics")
@auth_users.login_required()
def search_analytics() -> Any:
    filters, args = _filters()
    session = app_services().db.scoped()
    lists = {ranking: sa.query_ranking(session, filters, ranking, limit=LIST_LIMIT) for ranking in sa.RANKINGS}
    return render_template(
        "dashboard/search_analytics.html",
        args=args,
        overview=sa.overview(session, filters),
        listing_views=sa.listing_views(session, filters),
        lists=lists,
        languages=sa.languages(session, filters),
        experiments=_experiments(),
    )


@dataclass
class RankedProduct:
    rank: int
    sku: str
    title: str
    clicks: int  # clicks this product got from this query in this variant, in the range
    clicked_elsewhere: bool  # clicked for this query in another variant only


@dataclass
class VariantColumn:
    variant: str
    label: str
    config: RankingConfig
    products: list[RankedProduct]
    status: str  # the live search's rerank status (ok, disabled, timeout, ...)
    numbers: sa.QueryRow | None
    #: the scorer that reranked the live search (kind and model): the fallback is named, not shown as "reranked"
    scorer: dict[str, Any] | None = None
    #: what the relevance gate decided for the shopper: matched, related (total 0) or none
    match: str = "matched"


def _experiments() -> list[Experiment]:
    statement = select(Experiment).where(Experiment.status != "draft").order_by(Experiment.created_at.desc())
    return list(app_services().db.scoped().scalars(statement))


def _rankers(experiment_key: str | None) -> tuple[Experiment | None, list[tuple[str, str, RankingConfig]]]:
    """(variant, label, config) per ranker to show: the chosen experiment's, else the newest running one's, else
    the deployment's default ranking."""
    experiments = _experiments()
    if experiment_key:
        chosen = next((e for e in experiments if e.key == experiment_key), None)
        if chosen is None:
            abort(404, description=f"No started experiment with key {experiment_key!r}.")
    else:
        chosen = next((e for e in experiments if e.status == "running"), None)
    if chosen is None:
        default = RankingConfig(first_stage_top_k=app_services().settings.first_stage_top_k)  # as build_services
        return None, [(sa.NO_VARIANT, "Default ranking", default)]
    return chosen, [(v.key, v.name or v.key, ranking_config(v)) for v in chosen.variants]


def _live_ranking(
    query: str, language: str | None, config: RankingConfig
) -> tuple[list[Any], str, dict[str, Any] | None, str]:
    """What a shopper of ``config``'s arm sees for ``query`` right now, through the shop's own path (price words,
    the relevance gate, accessories below products, out-of-stock demotion): the page's products, the rerank status,
    the scorer and the match state (matched, related, none). Logs no exposure, no ops sample."""
    live = app_services().search
    search = SearchService(
        live.index,
        live.dispatcher,
        NoExperiment(config),
        deadline_ms=live.deadline_ms,
        max_query_chars=live.max_query_chars,
        fx=live.fx,
        # the live depth bounds, so a ranker without its own rerank_max_depth is previewed as it is served
        max_rerank_depth=live.max_rerank_depth,
        min_rerank_depth=live.min_rerank_depth,
    )
    shop = ShopSearch(search, gate=app_services().shop_search.gate)  # the one gate: same matches as the shop
    currency = shopper_currency(language, None, live.fx)
    page = shop.search(ShopQuery(text=query, currency=currency, language=language, per_page=RANKED_RESULTS))
    return page.hits, page.result.rerank_status, page.result.scorer, page.match


@bp.get("/search-analytics/query")
@auth_users.login_required()
def search_query() -> Any:
    query = request.args.get("q", "").strip()
    if not query:
        _bad("q", "required: the query to look at")
    filters, args = _filters()
    args["q"] = query
    session = app_services().db.scoped()
    chosen, rankers = _rankers(filters.experiment)
    all_traffic: int | None = None
    if chosen is not None and filters.experiment is None:
        # The list that links here counts every search of the query; say so when this page counts one
        # experiment's only, instead of showing other numbers silently.
        everywhere = sa.query_by_variant(session, filters, query)
        all_traffic = sum(row.searches for row in everywhere.values())
        filters = sa.Filters(filters.start, filters.end, filters.language, chosen.key)
        args["experiment"] = chosen.key
    numbers = sa.query_by_variant(session, filters, query)
    clicks: dict[tuple[str, str], int] = {}
    clicked_skus: set[str] = set()
    for row in sa.clicks_per_sku(session, filters, query):
        clicks[(row.variant, row.sku)] = row.clicks
        clicked_skus.add(row.sku)
    columns = []
    for variant, label, config in rankers:
        try:
            hits, status, scorer, match = _live_ranking(query, filters.language, config)
        except SearchInputError as exc:
            _bad("q", str(exc))
        products = [
            RankedProduct(
                rank=hit.rank,
                sku=hit.item.sku,
                title=hit.item.title,
                clicks=clicks.get((variant, hit.item.sku), 0),
                clicked_elsewhere=hit.item.sku in clicked_skus and (variant, hit.item.sku) not in clicks,
            )
            for hit in hits
        ]
        columns.append(VariantColumn(variant, label, config, products, status, numbers.get(variant), scorer, match))
    shown = {p.sku for column in columns for p in column.products}
    unseen = sorted(
        ((row_variant, sku, count) for (row_variant, sku), count in clicks.items() if sku not in shown),
        key=lambda item: -item[2],
    )[:RANKED_RESULTS]
    return render_template(
        "dashboard/search_query.html",
        args=args,
        query=query,
        experiment=chosen,
        columns=columns,
        unseen=unseen,
        numbers=numbers,
        all_traffic=all_traffic,
    )
