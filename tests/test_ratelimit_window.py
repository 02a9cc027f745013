"""Issue 22 item 10: the per-minute limits hold across a window edge (a fixed window let twice the budget through
around it), and the /search page is limited like the public APIs."""

from __future__ import annotations

import pytest

from webapp.ratelimit import MemoryRateLimiter, RedisRateLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _burst_across_an_edge(limiter, clock: Clock, key: str) -> int:
    clock.now = 60 * 1000 + 59.5  # half a second before a window ends
    allowed = sum(limiter.allow(key)[0] for _ in range(10))
    clock.now = 60 * 1001 + 0.5  # half a second after
    allowed += sum(limiter.allow(key)[0] for _ in range(10))
    return allowed


def test_memory_limiter_holds_across_a_window_edge():
    clock = Clock(0)
    limiter = MemoryRateLimiter(10, clock=clock)
    assert _burst_across_an_edge(limiter, clock, "ip") <= 11
    clock.now += 120  # two windows later the budget is whole again
    assert sum(limiter.allow("ip")[0] for _ in range(10)) == 10


def test_redis_limiter_holds_across_a_window_edge(redis_url, unique_prefix):
    import redis

    clock = Clock(0)
    limiter = RedisRateLimiter(redis_url, "edge", 10, prefix=unique_prefix, clock=clock)
    try:
        assert _burst_across_an_edge(limiter, clock, "ip") <= 11
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{unique_prefix}*"):
            client.delete(key)


def test_the_search_page_is_rate_limited_per_address(shop_app):
    from webapp.security import PUBLIC_LIMITER

    limiter = shop_app.extensions[PUBLIC_LIMITER]
    original = limiter.limit
    limiter.limit = 3
    try:
        client = shop_app.test_client()
        address = {"REMOTE_ADDR": "203.0.113.77"}
        statuses = [client.get("/search?q=kettle", environ_base=address).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
        limited = client.get("/search?q=kettle", environ_base=address)
        assert int(limited.headers["Retry-After"]) > 0 and limited.mimetype == "text/html"
    finally:
        limiter.limit = original


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_a_local_model_path_is_never_shown_to_shoppers():
    """Issue 22 item 10: ``/api/search`` and ``/search`` carried the reranker's file-system path."""
    from reranking.scorers.base import public_scorer

    local = {
        "model_id": "/srv/models/secret-dir/bge-reranker",
        "kind": "cross-encoder",
        "revision": "abc",
        "fallback_reason": "no weights in /srv/models/secret-dir/bge-reranker",
        "device": "cpu",
    }
    shown = public_scorer(local)
    assert shown is not None and shown["model_id"] == "bge-reranker" and shown["kind"] == "cross-encoder"
    assert "/srv" not in repr(shown)
    hub = {"model_id": "BAAI/bge-reranker-v2-m3", "kind": "cross-encoder"}
    assert public_scorer(hub) == hub  # a hub id is not a path
    assert public_scorer(None) is None
