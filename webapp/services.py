"""Everything a running app holds, built once per process from Settings.

The dispatcher is picked here: a configured broker means Celery workers
(``workers.client.CeleryDispatcher``, imported only then); otherwise the scorer
runs in this process on its own thread. Either way the search flow only sees
``RerankDispatcher``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from catalog.vectors import embedder
from experiments.outbox import ExposureOutbox
from experiments.ranking import RankingConfig, VariantResolver
from experiments.store.currency import parse_rates
from experiments.store.suggestions import blocked_phrases, past_searches
from reranking import MemoryScoreCache, RedisScoreCache, Reranker, load_scorer
from reranking.dispatch import InProcessDispatcher, RerankDispatcher
from reranking.scorers.bi_encoder import E5FallbackScorer
from search import query_price
from search.filters import FxRates
from search.index import CatalogIndex
from search.observer import SearchObserver
from search.service import SearchService
from search.shop_search import ShopSearch
from search.suggest import Suggester, blocked
from shoprank.config import Settings
from shoprank.db import Database
from shoprank.observability.window import SearchWindow
from webapp.answered_searches import AnsweredSearchRecorder
from webapp.background import BackgroundProgress
from webapp.ratelimit import RateLimiter, build_limiter

log = logging.getLogger(__name__)


def build_in_process_dispatcher(settings: Settings) -> InProcessDispatcher:
    scorer = load_scorer(settings.scorer_spec())
    if settings.redis_url:
        cache: Any = RedisScoreCache(settings.redis_url, ttl_seconds=settings.score_cache_ttl_seconds)
    else:
        cache = MemoryScoreCache(ttl_seconds=settings.score_cache_ttl_seconds)
    info = scorer.info
    log.info(
        "reranking in-process with %s [%s, %s, %s]%s",
        info.model_id,
        info.kind,
        info.device,
        info.dtype,
        f" -- FALLBACK: {info.fallback_reason}" if info.fallback_reason else "",
    )
    return InProcessDispatcher(
        {settings.reranker_model: Reranker(scorer, cache)}, settings.reranker_model, settings.depth_policy()
    )


def share_language_centering(dispatcher: RerankDispatcher, index: CatalogIndex) -> None:
    """Give an in-process e5 fallback scorer the catalog's language centering, so reranking compares
    vectors in the same space dense retrieval did (else it would re-sort by raw, language-biased cosine)."""
    for scorer in getattr(dispatcher, "scorers", lambda: [])():
        if isinstance(scorer, E5FallbackScorer):
            scorer.use_centering(index.centering)


def build_dispatcher(settings: Settings) -> RerankDispatcher:
    if settings.resolved_broker_url:
        try:
            from workers.client import CeleryDispatcher
        except ImportError as exc:
            log.error(
                "a broker is configured (%s) but the Celery client is unavailable (%s); reranking in-process",
                settings.resolved_broker_url,
                exc,
            )
        else:
            log.info("reranking on Celery workers via %s", settings.resolved_broker_url)
            return CeleryDispatcher.from_settings(settings)
    return build_in_process_dispatcher(settings)


@dataclass
class AppServices:
    settings: Settings
    db: Database
    index: CatalogIndex
    dispatcher: RerankDispatcher
    search: SearchService
    rate_limiter: RateLimiter
    started_at: float = field(default_factory=time.time)
    #: Recent searches for the ops page (Redis-backed when configured, so every web process sees all).
    window: SearchWindow | None = None
    #: The shopper's search around ``search`` (query understanding, floor, facets, pages) and autocomplete.
    # Never None once built: __post_init__ fills in what was not given (None is only the "not given" marker).
    shop_search: ShopSearch = None  # type: ignore[assignment]  # see above: callers always see a ShopSearch
    suggester: Suggester = None  # type: ignore[assignment]  # see above: callers always see a Suggester
    #: Work this process does after it started serving (the demo's simulated traffic); the dashboard shows it.
    background: BackgroundProgress = field(default_factory=BackgroundProgress)
    #: Searches the shop page answered with results, per shopper: autocomplete's past searches (never events).
    answered_searches: AnsweredSearchRecorder = None  # type: ignore[assignment]  # filled in by __post_init__

    def __post_init__(self) -> None:
        if self.answered_searches is None:
            self.answered_searches = AnsweredSearchRecorder(self.db, enabled=self.settings.suggest_min_shoppers > 0)
        if self.shop_search is None:
            self.shop_search = ShopSearch(self.search)
        if self.suggester is None:
            self.suggester = Suggester(self.index, self._past_searches)

    def warm(self) -> float:
        """Open the catalog index, load the query encoder and learn the relevance gate's catalog state now, not in
        the first shopper's search.

        gunicorn calls this in each worker before it accepts connections (``post_worker_init``), so a fresh
        worker never makes its first searches wait seconds for a model load while others queue behind them.
        Returns the seconds it took; failures are logged and left to the first search (which degrades).
        """
        started = time.monotonic()
        try:
            self.index.refresh_if_changed().first_stage("warm-up", 10)
            self.shop_search.gate.warm()  # the relevance gate's per-version state, else the first search's job
            query_price.warm()  # the price patterns, else compiled in the first search of each language
        except Exception:
            log.exception("warming the catalog index failed; the first search will try again")
        return time.monotonic() - started

    def warm_scorer(self) -> None:
        """Start the reranker's first call (thread pools, model session) at low priority; returns at once.

        ``serve`` used to warm up with a whole search: on a slow or busy machine its rerank ran into the deadline
        and kept the scorer busy, so the first shopper's search waited behind it. ``dispatcher.warm`` scores one
        pair and yields to any live job, so a real search never waits for the warm-up.
        """
        try:
            self.dispatcher.warm("warm up", ["warm up"])
        except Exception:
            log.exception("warming the reranker failed; the first search will load what it needs")

    def _past_searches(self) -> list[tuple[str, str | None, int]]:
        """Phrases enough distinct shoppers searched on the shop and were shown results, less the block list."""
        with self.db.session() as session:
            rows = past_searches(session, min_shoppers=self.settings.suggest_min_shoppers)
            blocks = [block.phrase for block in blocked_phrases(session)] if rows else []
        return [(row.phrase, row.language, row.shoppers) for row in rows if not blocked(row.phrase, blocks)]

    def scorer_info(self) -> dict[str, Any] | None:
        """The default scorer's description, from whatever the dispatcher reports."""
        try:
            described = self.dispatcher.describe()
        except Exception:  # a dispatcher that cannot describe itself is reported as unknown
            log.exception("dispatcher.describe() failed")
            return None
        if "scorer" in described and isinstance(described["scorer"], dict):
            return described["scorer"]
        scorers = described.get("scorers")
        if isinstance(scorers, dict) and scorers:
            default = described.get("default_model")
            chosen: dict[str, Any] | None = scorers.get(default) or next(iter(scorers.values()))
            return chosen
        return None

    def close(self) -> None:
        self.answered_searches.close()
        close = getattr(self.dispatcher, "close", None)
        if callable(close):
            close()
        self.db.dispose()


def build_services(
    settings: Settings,
    *,
    db: Database | None = None,
    dispatcher: RerankDispatcher | None = None,
    resolver: VariantResolver | None = None,
) -> AppServices:
    db = db or Database.from_settings(settings)
    fx = FxRates(parse_rates(settings.fx_rates))
    index = CatalogIndex(
        db,
        embedder(),
        settings.resolved_index_dir,
        fx=fx,
        poll_interval=settings.index_poll_seconds,
        lexical_weight=settings.first_stage_lexical_weight,
    )
    dispatcher = dispatcher or build_dispatcher(settings)
    index.on_refresh.append(lambda opened: share_language_centering(dispatcher, opened))
    if resolver is None:
        from experiments.resolver import ExperimentResolver

        resolver = ExperimentResolver(
            db,
            RankingConfig(first_stage_top_k=settings.first_stage_top_k),
            refresh_seconds=settings.experiments_refresh_seconds,
            outbox=ExposureOutbox(settings.resolved_outbox_dir, settings.redis_url, settings.queue_prefix),
        )
    search = SearchService(
        index,
        dispatcher,
        resolver,
        deadline_ms=settings.rerank_deadline_ms,
        max_query_chars=settings.max_query_chars,
        fx=fx,
        max_rerank_depth=settings.rerank_max_depth,
        min_rerank_depth=settings.rerank_min_depth,
    )
    window = SearchWindow(settings.ops_window_size, settings.redis_url, settings.queue_prefix)
    search.observers.append(SearchObserver(window, dispatcher))
    return AppServices(
        settings=settings,
        db=db,
        index=index,
        dispatcher=dispatcher,
        search=search,
        rate_limiter=build_limiter(settings, "api-key", settings.api_rate_limit_per_minute),
        window=window,
    )
