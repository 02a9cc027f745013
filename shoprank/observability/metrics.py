"""Prometheus metrics: every family shoprank exports, and how a process serves them.

Families are module-level (prometheus-client's model) and recorded by the callers that see the outcome:
the search flow, the events endpoint, the HTTP hook, the Celery task. The ``reranking`` library stays
metrics-free; its scorers keep cumulative counters (``ScorerStats``) that ``ScorerStatsRecorder`` turns
into per-batch observations.

Multi-process servers (gunicorn with several workers, prefork rerank workers): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory before the processes start; each process
then writes its samples there and ``registry_for_scrape`` merges them (``MultiProcessCollector``).
Without it every process reports only its own samples.

Queue depth and live workers are the workers' business: ``workers.ops_metrics.OpsCollector`` reads them
from Redis at scrape time and is passed to ``render`` as an extra collector; this module imports no
Celery and no Redis.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_PAIR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)

SEARCH_LATENCY = Histogram(
    "shoprank_search_latency_seconds",
    "Search latency by stage: retrieval (first stage), rerank (dispatch incl. queue wait), total.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
SEARCHES = Counter("shoprank_searches_total", "Searches by rerank outcome (ok, disabled, timeout, ...).", ["status"])
RERANK_FALLBACKS = Counter(
    "shoprank_rerank_fallbacks_total",
    "Searches that kept first-stage order because reranking failed, by reason (timeout = deadline passed).",
    ["reason"],
)
RERANK_BATCH_PAIRS = Histogram(
    "shoprank_rerank_batch_pairs",
    "(query, passage) pairs per model forward batch; where = web (in-process scorer) or worker.",
    ["where"],
    buckets=_PAIR_BUCKETS,
)
RERANK_BATCH_TOKENS = Histogram(
    "shoprank_rerank_batch_tokens",
    "Tokens (without padding) per model forward batch; where = web or worker.",
    ["where"],
    buckets=_TOKEN_BUCKETS,
)
SCORE_CACHE_HITS = Counter("shoprank_score_cache_hits_total", "Pair scores answered from the score cache.", ["where"])
SCORE_CACHE_MISSES = Counter("shoprank_score_cache_misses_total", "Pair scores the model had to compute.", ["where"])
EVENTS_INGESTED = Counter(
    "shoprank_events_ingested_total",
    "Accepted behaviour events: stored, duplicate (a retried id) or ignored.",
    ["result"],
)
EVENTS_REJECTED = Counter("shoprank_events_rejected_total", "Event batches refused with a 4xx, by reason.", ["reason"])
HTTP_RESPONSES = Counter(
    "shoprank_http_responses_total",
    "HTTP responses by method, Flask endpoint (not raw path: bounded cardinality) and status code.",
    ["method", "endpoint", "status"],
)
RERANK_JOBS = Counter("shoprank_rerank_jobs_total", "Rerank jobs a worker finished, by outcome.", ["outcome"])
RERANK_DEPTH = Histogram(
    "shoprank_rerank_depth",
    "First-stage candidates a search's reranker scored (0 = not reranked); the deadline-aware policy picks it.",
    buckets=(0, 5, 10, 20, 30, 50, 75, 100, 150, 200, 500),
)
RERANK_DEADLINE_JOBS = Counter(
    "shoprank_rerank_deadline_jobs_total",
    "Worker jobs the deadline cut short: expired (dropped unscored), partial (a head answered), stopped (nothing).",
    ["outcome"],
)
RERANK_SKIPPED_PAIRS = Counter(
    "shoprank_rerank_skipped_pairs_total", "Pairs a worker never scored because their job's deadline passed."
)
RERANK_LATE_SECONDS = Counter(
    "shoprank_rerank_late_seconds_total",
    "Model seconds a worker spent on pairs that finished after their job's deadline (work nobody waited for).",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry_for_scrape(extra: Collector | None = None) -> CollectorRegistry:
    """The registry to render: merged per-process files in multi-process mode, else this process's own."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    if extra is None:
        return registry
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_Chain(registry, extra))
    return combined


class _Chain(Collector):
    """Everything ``registry`` holds, then ``extra``: the global registry must not keep per-app collectors."""

    def __init__(self, registry: CollectorRegistry, extra: Collector) -> None:
        self._registry, self._extra = registry, extra

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()
        yield from self._extra.collect()


def render(extra: Collector | None = None) -> bytes:
    """The Prometheus text exposition for this process (or all processes, in multi-process mode)."""
    return generate_latest(registry_for_scrape(extra))


class ScorerStatsRecorder:
    """Turns a scorer's cumulative ``ScorerStats`` into per-batch histogram observations.

    Each call observes the batches run since the previous call, at their mean size over that interval
    (exact when one job ran, which is the common case at low load; an average under concurrency).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._last: dict[int, Mapping[str, float]] = {}
        self._lock = threading.Lock()

    def record(self, scorer_key: int, snapshot: Mapping[str, float]) -> None:
        with self._lock:
            last = self._last.get(scorer_key, {})
            self._last[scorer_key] = dict(snapshot)
        batches = int(snapshot.get("batches", 0) - last.get("batches", 0))
        if batches <= 0:
            return
        pairs = (snapshot.get("pairs_scored", 0) - last.get("pairs_scored", 0)) / batches
        tokens = (snapshot.get("tokens", 0) - last.get("tokens", 0)) / batches
        pair_hist, token_hist = RERANK_BATCH_PAIRS.labels(self.where), RERANK_BATCH_TOKENS.labels(self.where)
        for _ in range(min(batches, 1000)):
            pair_hist.observe(pairs)
            token_hist.observe(tokens)


class DeadlineStatsRecorder:
    """Turns a worker's cumulative deadline counters (``BatcherStats``) into counter increments."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, snapshot: Mapping[str, float]) -> None:
        with self._lock:
            delta = {name: snapshot.get(name, 0) - self._last.get(name, 0) for name in snapshot}
            self._last = dict(snapshot)
        for outcome in ("expired", "partial", "stopped"):
            if delta.get(f"{outcome}_jobs", 0) > 0:
                RERANK_DEADLINE_JOBS.labels(outcome).inc(delta[f"{outcome}_jobs"])
        if delta.get("skipped_pairs", 0) > 0:
            RERANK_SKIPPED_PAIRS.inc(delta["skipped_pairs"])
        if delta.get("late_seconds", 0) > 0:
            RERANK_LATE_SECONDS.inc(delta["late_seconds"])


def record_cache(where: str, hits: int, misses: int) -> None:
    if hits:
        SCORE_CACHE_HITS.labels(where).inc(hits)
    if misses:
        SCORE_CACHE_MISSES.labels(where).inc(misses)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:  # nosec B104 - a container's metrics port for Prometheus
    """Serve ``/metrics`` on ``port`` from a daemon thread (rerank workers; 0 = do nothing)."""
    if not port:
        return
    start_http_server(port, addr=host, registry=registry_for_scrape())
    log.info("metrics on http://%s:%d/metrics%s", host, port, " (multi-process)" if multiprocess_dir() else "")
