"""Pair-score cache: raw scores keyed by everything that could change them.

Only cache misses reach the model. The key covers model id and revision, backend
and precision, max_length, passage-format version, normalized query and the exact
passage text, so a model upgrade or a format change can never serve stale scores.
Values are raw logits (float32): normalisation is cheap and done on read.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np
from cachetools import TTLCache

from reranking.passages import PASSAGE_FORMAT_VERSION
from reranking.text import normalize_query

if TYPE_CHECKING:  # for the annotation only; RedisScoreCache imports redis when it is built, as before
    import redis

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
KEY_PREFIX = "shoprank:pair:"
_FLOAT = struct.Struct("<f")


def pair_cache_key(namespace: str, query: str, passage: str) -> str:
    """Stable key; ``query`` must already be normalized (see ``reranking.text.normalize_query``)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (namespace, f"fmt{PASSAGE_FORMAT_VERSION}", query, passage):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return KEY_PREFIX + digest.hexdigest()


def budget_namespace(namespace: str, passage_tokens: int | None) -> str:
    """A scorer's namespace for passages read within a token budget: the same text, cut, scores differently."""
    return namespace if passage_tokens is None else f"{namespace}|p{passage_tokens}"


def pair_cache_keys(namespace: str, query: str, passages: Sequence[str]) -> list[str]:
    """Keys for one query against many passages; normalizes the query the same way scoring does."""
    normalized = normalize_query(query)
    return [pair_cache_key(namespace, normalized, passage) for passage in passages]


def cached_scores(cache: ScoreCache, namespace: str, query: str, passages: Sequence[str]) -> np.ndarray | None:
    """Raw scores if *every* pair is cached (one batched lookup), else None.

    Lets a caller answer a popular query without queueing it behind a model: the web
    tier before enqueueing a Celery job, a worker before handing a job to its model thread.
    """
    values = cache.get_many(pair_cache_keys(namespace, query, passages))
    if any(value is None for value in values):
        return None
    return np.asarray(values, dtype=np.float32)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, hits: int = 0, misses: int = 0, errors: int = 0) -> None:
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.errors += errors

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "errors": self.errors}


class ScoreCache(Protocol):
    stats: CacheStats

    def get_many(self, keys: Sequence[str]) -> list[float | None]:
        """One entry per key, ``None`` for a miss. Never raises."""

    def set_many(self, scores: Mapping[str, float]) -> None:
        """Best effort; never raises."""


class NullScoreCache:
    """No caching: every pair is scored."""

    def __init__(self) -> None:
        self.stats = CacheStats()

    def get_many(self, keys: Sequence[str]) -> list[float | None]:
        self.stats.record(misses=len(keys))
        return [None] * len(keys)

    def set_many(self, scores: Mapping[str, float]) -> None:
        return None


class MemoryScoreCache:
    """In-process LRU with TTL for the embedded mode (one process, no Redis)."""

    def __init__(self, maxsize: int = 200_000, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.stats = CacheStats()
        self._entries: TTLCache[str, float] = TTLCache(maxsize=maxsize, ttl=ttl_seconds)
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[float | None]:
        with self._lock:
            values = [self._entries.get(key) for key in keys]
        hits = sum(v is not None for v in values)
        self.stats.record(hits=hits, misses=len(keys) - hits)
        return values

    def set_many(self, scores: Mapping[str, float]) -> None:
        with self._lock:
            self._entries.update(scores)


class RedisScoreCache:
    """Shared cache for all web processes and workers: one MGET per lookup, one pipeline per write.

    When Redis is down every call degrades to "all misses" after at most one short
    connect timeout, then the cache stays bypassed for ``retry_after`` seconds so a
    dead Redis does not add a timeout to every search.
    """

    def __init__(
        self,
        client_or_url: str | redis.Redis,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        retry_after: float = 5.0,
        socket_timeout: float = 0.25,
        key_prefix: str = "",
    ) -> None:
        import redis

        if isinstance(client_or_url, str):
            self._redis = redis.Redis.from_url(
                client_or_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        else:
            self._redis = client_or_url
        self._errors = (redis.exceptions.RedisError, OSError)
        self.ttl_seconds = int(ttl_seconds)
        self.retry_after = retry_after
        self.stats = CacheStats()
        self.key_prefix = key_prefix  # lets tenants/tests share one Redis without sharing entries
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _mark_down(self, exc: Exception) -> None:
        if self.available:
            log.warning("score cache unavailable (%s); scoring without cache for %.0fs", exc, self.retry_after)
        self._down_until = time.monotonic() + self.retry_after
        self.stats.record(errors=1)

    def get_many(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        if not self.available:
            self.stats.record(misses=len(keys))
            return [None] * len(keys)
        try:
            # bytes: a cache client does not decode responses (one made from a URL never does); mget allows str
            raw = cast(list[bytes | None], self._redis.mget([self.key_prefix + key for key in keys]))
        except self._errors as exc:
            self._mark_down(exc)
            self.stats.record(misses=len(keys))
            return [None] * len(keys)
        values = [_FLOAT.unpack(v)[0] if v is not None and len(v) == 4 else None for v in raw]
        hits = sum(v is not None for v in values)
        self.stats.record(hits=hits, misses=len(keys) - hits)
        return values

    def set_many(self, scores: Mapping[str, float]) -> None:
        if not scores or not self.available:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in scores.items():
                pipe.set(self.key_prefix + key, _FLOAT.pack(value), ex=self.ttl_seconds)
            pipe.execute()
        except self._errors as exc:
            self._mark_down(exc)
