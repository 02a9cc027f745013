"""The autoscaler's signal: seconds of model work waiting = uncached backlog pairs / measured pool pairs/s.

Read from a real Redis (registry advertisements and backlog entries written the way workers and the web
tier write them), exported by the same ``/metrics`` collector that serves queue depth.
"""

from __future__ import annotations

import time
import uuid

import pytest
from conftest import REDIS_URL, service_missing

from shoprank.config import Settings
from workers.backlog import Backlog
from workers.ops_metrics import OpsCollector
from workers.registry import WorkerRegistry
from workers.scaling_signal import ALL_QUEUES, work_waiting
from workers.testing import delete_prefixed_keys


def _entry(family: str, rate: float | None, node: str) -> dict[str, object]:
    return {"node": node, "pid": 1, "device_family": family, "device": family, "pairs_per_second": rate}


def test_work_waiting_divides_uncached_backlog_by_the_measured_pool_rate():
    entries = [_entry("cpu", 40.0, "a"), _entry("cpu", 60.0, "b"), _entry("cuda", 500.0, "g"), _entry("cpu", None, "c")]
    waiting = work_waiting({"rerank.cpu": 250, "rerank.gpu": 100}, entries)
    assert waiting["rerank.cpu"].seconds == pytest.approx(2.5)  # 250 pairs / (40 + 60) pairs/s
    assert waiting["rerank.gpu"].seconds == pytest.approx(0.2)
    assert waiting[ALL_QUEUES].pairs == 350 and waiting[ALL_QUEUES].seconds == pytest.approx(350 / 600)


def test_no_measured_rate_means_no_value_but_an_empty_backlog_means_zero():
    waiting = work_waiting({"rerank.cpu": 0, "rerank.gpu": 30}, [_entry("cpu", 50.0, "a")])
    assert waiting["rerank.cpu"].seconds == 0.0
    assert waiting["rerank.gpu"].seconds is None  # GPU pool at zero: nothing to divide by, not "infinitely busy"
    assert waiting[ALL_QUEUES].seconds == pytest.approx(30 / 50)


def test_metrics_export_the_signal_from_redis():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")
    prefix = f"test-signal-{uuid.uuid4().hex[:8]}:"
    settings = Settings.from_env({}, redis_url=REDIS_URL, queue_prefix=prefix)
    try:
        registry = WorkerRegistry.from_url(REDIS_URL, prefix)
        registry.advertise("w1", _entry("cpu", 80.0, "rerank-cpu@w1"))
        registry.advertise("w2", _entry("cpu", 20.0, "rerank-cpu@w2"))
        backlog = Backlog.from_url(REDIS_URL, prefix)
        now = time.time()
        backlog.add("rerank.cpu", "job-1", 90, now + 30)
        backlog.add("rerank.cpu", "job-2", 60, now + 30)
        backlog.add("rerank.cpu", "stale", 1000, now - 1)  # its caller gave up: not work anyone waits for
        families = list(OpsCollector(settings).collect())
        samples = {(f.name, s.labels.get("queue")): s.value for f in families for s in f.samples if "queue" in s.labels}
        assert samples[("shoprank_backlog_pairs", "rerank.cpu")] == 150
        assert samples[("shoprank_pool_pairs_per_second", "rerank.cpu")] == 100.0
        assert samples[("shoprank_work_waiting_seconds", "rerank.cpu")] == pytest.approx(1.5)
        assert samples[("shoprank_work_waiting_seconds", "all")] == pytest.approx(1.5)
        assert ("shoprank_work_waiting_seconds", "rerank.gpu") in samples  # empty backlog: 0, not absent
        assert samples[("shoprank_work_waiting_seconds", "rerank.gpu")] == 0.0
    finally:
        delete_prefixed_keys(REDIS_URL, prefix)
