"""The last N searches, kept where every web process can read them: the ops page's percentiles.

Prometheus histograms answer "p95 over 5 minutes" in PromQL, but the ops page must work without a
Prometheus server and across gunicorn workers. Each search appends one compact record to a bounded
Redis list (``LPUSH`` + ``LTRIM`` in one round trip) when Redis is configured, else to a deque in this
process. A Redis error never fails a search: the record goes to the local deque and the error is logged
once.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

STAGES = ("retrieval", "rerank", "total")
PERCENTILES = (50, 95, 99)
#: Rerank statuses that are not a failure: nothing to rerank, or the variant does not rerank.
NOT_FALLBACK = ("ok", "partial", "disabled", "no_candidates")
#: After a failed Redis write, records stay in-process this long before Redis is tried again.
RETRY_AFTER_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SearchRecord:
    at: float  # unix seconds
    retrieval_ms: float
    rerank_ms: float | None  # None when the ranking did not rerank
    total_ms: float
    status: str
    cache_hits: int = 0
    cache_misses: int = 0
    rerank_depth: int = 0

    def to_json(self) -> str:
        rerank = None if self.rerank_ms is None else round(self.rerank_ms, 2)
        values = [round(self.at, 3), round(self.retrieval_ms, 2), rerank, round(self.total_ms, 2), self.status]
        return json.dumps([*values, self.cache_hits, self.cache_misses, self.rerank_depth], separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> SearchRecord:
        at, retrieval, rerank, total, status, hits, misses, *rest = json.loads(raw)  # rest: depth (newer records)
        rerank_ms = None if rerank is None else float(rerank)
        depth = int(rest[0]) if rest else 0
        return cls(float(at), float(retrieval), rerank_ms, float(total), str(status), int(hits), int(misses), depth)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (what an operator expects: an observed value), None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class SearchWindow:
    """Bounded window of ``SearchRecord``s, in Redis (shared) or in this process."""

    def __init__(self, size: int, redis_url: str | None = None, prefix: str = "", timeout: float = 0.25) -> None:
        self.size = size
        self._local: deque[str] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._key = f"{prefix}shoprank:ops:searches"
        self._redis: Any = None
        self._failing = False
        self._retry_at = float("-inf")
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def add(self, record: SearchRecord) -> None:
        raw = record.to_json()
        if self._redis is not None and time.monotonic() >= self._retry_at:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.lpush(self._key, raw)
                pipe.ltrim(self._key, 0, self.size - 1)
                pipe.execute()
                self._failing = False
                return
            except Exception as exc:  # the search must not pay for the ops page
                if not self._failing:
                    log.warning("ops search window: Redis write failed (%s); keeping records in-process", exc)
                self._failing = True
                # A silent Redis would cost every search the socket timeout: skip it for a while instead.
                self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        with self._lock:
            self._local.appendleft(raw)

    def records(self) -> list[SearchRecord]:
        """Newest first; from Redis when it answers, else this process's records."""
        raws: list[Any] = []
        if self._redis is not None:
            try:
                raws = self._redis.lrange(self._key, 0, self.size - 1)
            except Exception as exc:
                log.warning("ops search window: Redis read failed (%s); showing this process only", exc)
        if not raws:
            with self._lock:
                raws = list(self._local)
        records = []
        for raw in raws:
            try:
                records.append(SearchRecord.from_json(raw))
            except (ValueError, TypeError):
                continue
        return records

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """Percentiles per stage, fallback rate, cache hit rate and a per-minute series of the window."""
        records = self.records()
        now = time.time() if now is None else now
        by_stage: dict[str, list[float]] = {
            "retrieval": [r.retrieval_ms for r in records],
            "rerank": [r.rerank_ms for r in records if r.rerank_ms is not None],
            "total": [r.total_ms for r in records],
        }
        latency = {
            stage: {f"p{q}": percentile(values, q) for q in PERCENTILES} | {"count": len(values)}
            for stage, values in by_stage.items()
        }
        attempted = [r for r in records if r.status not in ("disabled", "no_candidates")]
        fallbacks: dict[str, int] = {}
        for r in attempted:
            if r.status not in NOT_FALLBACK:
                fallbacks[r.status] = fallbacks.get(r.status, 0) + 1
        hits, misses = sum(r.cache_hits for r in records), sum(r.cache_misses for r in records)
        depths = [r.rerank_depth for r in records if r.status in ("ok", "partial")]
        minutes: dict[int, list[float]] = {}
        for r in records:
            minutes.setdefault(int(r.at // 60), []).append(r.total_ms)
        series = [
            {"minute": m * 60, "n": len(v)} | {f"p{q}": percentile(v, q) for q in PERCENTILES}
            for m, v in sorted(minutes.items())
        ]
        return {
            "searches": len(records),
            "since": min((r.at for r in records), default=None),
            "age_seconds": now - min((r.at for r in records), default=now),
            "latency_ms": latency,
            "rerank_attempts": len(attempted),
            "fallbacks": fallbacks,
            "fallback_rate": (sum(fallbacks.values()) / len(attempted)) if attempted else None,
            "cache_hits": hits,
            "cache_misses": misses,
            "cache_hit_rate": hits / (hits + misses) if hits + misses else None,
            "rerank_depth": {
                "p50": percentile(depths, 50),
                "p5": percentile(depths, 5),
                "mean": sum(depths) / len(depths) if depths else None,
                "partial": sum(r.status == "partial" for r in records),
                "shed": sum(r.status == "shed" for r in records),
            },
            "series": series,
            "shared": self.shared,
        }
