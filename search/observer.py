"""What every search reports: Prometheus families and the ops page's rolling window, from one ``SearchResult``."""

from __future__ import annotations

import time
from typing import Any

from search.service import SearchResult
from shoprank.observability import metrics
from shoprank.observability.window import NOT_FALLBACK, SearchRecord, SearchWindow


class SearchObserver:
    """Registered in ``SearchService.observers`` by ``webapp.services.build_services``.

    Cache hits/misses are counted with ``where="search"``: the pairs a search needed and how many came from
    the cache, wherever the lookup ran (web-side short-circuit, in-process scorer or worker). Workers count
    their own lookups with ``where="worker"``.
    """

    def __init__(self, window: SearchWindow, dispatcher: Any = None) -> None:
        self.window = window
        self.dispatcher = dispatcher
        self._batches = metrics.ScorerStatsRecorder("web")

    def __call__(self, result: SearchResult) -> None:
        timings = result.timings_ms
        retrieval_ms = float(timings.get("first_stage", 0.0))
        rerank_parts = [timings[name] for name in ("rerank", "rerank_b") if name in timings]
        rerank_ms = float(sum(rerank_parts)) if rerank_parts else None
        total_ms = float(timings.get("total", 0.0))
        metrics.SEARCH_LATENCY.labels("retrieval").observe(retrieval_ms / 1000)
        if rerank_ms is not None:
            metrics.SEARCH_LATENCY.labels("rerank").observe(rerank_ms / 1000)
        metrics.SEARCH_LATENCY.labels("total").observe(total_ms / 1000)
        metrics.SEARCHES.labels(result.rerank_status).inc()
        if result.rerank_status not in NOT_FALLBACK:
            metrics.RERANK_FALLBACKS.labels(result.rerank_status).inc()
        metrics.record_cache("search", result.cache_hits, result.cache_misses)
        if result.rerank_status not in ("disabled", "no_candidates"):
            metrics.RERANK_DEPTH.observe(result.rerank_depth)
        self._record_in_process_batches()
        self.window.add(
            SearchRecord(
                at=time.time(),
                retrieval_ms=retrieval_ms,
                rerank_ms=rerank_ms,
                total_ms=total_ms,
                status=result.rerank_status,
                cache_hits=result.cache_hits,
                cache_misses=result.cache_misses,
                rerank_depth=result.rerank_depth,
            )
        )

    def _record_in_process_batches(self) -> None:
        """The in-process dispatcher's scorers batch in this process; Celery workers record their own."""
        scorers = getattr(self.dispatcher, "scorers", None)
        if not callable(scorers):
            return
        for scorer in scorers():
            stats = getattr(scorer, "stats", None)
            if stats is not None:
                self._batches.record(id(scorer), stats.snapshot())
