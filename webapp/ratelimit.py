"""Sliding-window rate limiters: one per purpose (API key, public API per IP, login per IP), one interface.

``allow(key)`` counts a hit and answers ``(allowed, seconds until the window resets)``. Two stores:

- :class:`MemoryRateLimiter`: a dict in this process. Right for one web process (and tests); behind several
  processes each would enforce its own share, so it is only the fallback.
- :class:`RedisRateLimiter`: ``INCR`` + ``EXPIRE`` on one key per (purpose, key, window) in the Redis every
  process already shares (``SHOPRANK_REDIS_URL``), so the limit holds across gunicorn workers and hosts.

Each counts hits per fixed window and weighs the previous window's count by the share of it still inside the
last ``window_seconds`` (the "sliding window counter" of Cloudflare and nginx): a fixed window alone let a client
send twice the limit around a window edge (issue 22); this costs the same one round trip.
When Redis is unreachable the limiter lets requests through (logged, and Redis is
retried after ``RETRY_S``, so requests do not each wait on a timeout): an outage of the limiter's store must
not take the shop down with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from webapp.errors import ApiError

log = logging.getLogger(__name__)
RETRY_S = 5.0  # how long a limiter that lost Redis lets everything through before trying Redis again


class RateLimiter(Protocol):
    limit: int
    window_seconds: int

    def allow(self, key: Any) -> tuple[bool, int]: ...


def _retry_after(now: float, window_seconds: int) -> int:
    return int(window_seconds - now % window_seconds) + 1


def _weighted(now: float, window_seconds: int, current: int, previous: int) -> float:
    """Hits in the last ``window_seconds``, estimated: this window's plus the part of the previous one still in."""
    elapsed = (now % window_seconds) / window_seconds
    return current + previous * (1.0 - elapsed)


class MemoryRateLimiter:
    """Sliding windows in process memory; ``limit`` 0 disables it (tests may change ``limit`` on the fly)."""

    def __init__(self, limit: int, window_seconds: int = 60, *, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._windows: dict[Any, tuple[int, int, int]] = {}  # key -> (window, count, previous window's count)
        self._lock = threading.Lock()

    def allow(self, key: Any) -> tuple[bool, int]:
        if self.limit <= 0:
            return True, 0
        now = self._clock()
        window = int(now // self.window_seconds)
        with self._lock:
            start, count, previous = self._windows.get(key, (window, 0, 0))
            if start != window:
                start, count, previous = window, 0, (count if start == window - 1 else 0)
            count += 1
            self._windows[key] = (start, count, previous)
            if len(self._windows) > 100_000:  # many distinct IPs: drop the windows that no longer count
                self._windows = {k: v for k, v in self._windows.items() if v[0] >= window - 1}
        return _weighted(now, self.window_seconds, count, previous) <= self.limit, _retry_after(
            now, self.window_seconds
        )


class RedisRateLimiter:
    """Fixed windows in Redis, shared by every process that uses the same URL and prefix."""

    def __init__(
        self,
        url: str,
        name: str,
        limit: int,
        window_seconds: int = 60,
        *,
        prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        import redis

        self.limit = limit
        self.window_seconds = window_seconds
        self.key_prefix = f"{prefix}shoprank:ratelimit:{name}:"
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._clock = clock
        self._down_until = 0.0  # after a failure, skip Redis for a few seconds instead of waiting on it per request

    def allow(self, key: Any) -> tuple[bool, int]:
        if self.limit <= 0:
            return True, 0
        import redis

        if time.monotonic() < self._down_until:
            return True, 0
        now = self._clock()
        window = int(now // self.window_seconds)
        redis_key = f"{self.key_prefix}{key}:{window}"
        try:
            pipe = self._redis.pipeline()
            pipe.incr(redis_key)
            pipe.expire(redis_key, 2 * self.window_seconds + 1)  # the next window still weighs it
            pipe.get(f"{self.key_prefix}{key}:{window - 1}")
            replies = pipe.execute()
            count, previous = int(replies[0]), int(replies[2] or 0)
        except redis.RedisError as exc:
            log.warning("rate limiter %s: Redis unavailable (%s); not limiting for %s s", self.key_prefix, exc, RETRY_S)
            self._down_until = time.monotonic() + RETRY_S
            return True, 0
        return _weighted(now, self.window_seconds, count, previous) <= self.limit, _retry_after(
            now, self.window_seconds
        )


def build_limiter(settings: Any, name: str, limit: int, window_seconds: int = 60) -> RateLimiter:
    """Redis-backed when ``SHOPRANK_REDIS_URL`` is set (shared across processes), else in this process."""
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url, name, limit, window_seconds, prefix=getattr(settings, "cache_key_prefix", "")
        )
    return MemoryRateLimiter(limit, window_seconds)


def enforce(limiter: RateLimiter, key: Any, whose: str) -> None:
    """Spend one unit of ``key``'s budget; past it, the JSON 429 with ``Retry-After`` every limited API answers."""
    allowed, retry_after = limiter.allow(key)
    if not allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {limiter.limit} requests this minute {whose}; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
