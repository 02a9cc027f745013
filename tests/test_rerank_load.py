"""Reranking under load, with real worker processes: deadlines, adaptive depth, partial heads, warming.

Each test starts the workers it needs (the tiny random XLM-R cross-encoder, fp32) under a
private key prefix on the shared Redis. A slow model is ``SHOPRANK_TEST_PAIR_DELAY_SECONDS``
(seconds per pair, test env only); a job held before scoring is ``SHOPRANK_TEST_JOB_DELAY_SECONDS``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REDIS_URL, service_missing

from experiments.ranking import NoExperiment, RankingConfig
from reranking.cache import RedisScoreCache, pair_cache_keys
from reranking.dispatch import RerankJob, RerankShed
from search.service import SearchService
from workers.celery_app import QUEUE_CPU, RERANK_TASK_NAME
from workers.client import CeleryDispatcher
from workers.runtime import TEST_JOB_DELAY_ENV, TEST_PAIR_DELAY_ENV
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for
from workers.warming import WarmQueue


def passages(tag: str, n: int) -> list[str]:
    return [f"Title: {tag} product {i}\nDescription: {'wireless ' * (i % 4)}headphones" for i in range(n)]


class Pool:
    """One worker process under its own key prefix, with a dispatcher to talk to it."""

    def __init__(self, model_dir: Path, log_dir: Path, **env: str) -> None:
        self.env = isolated_environment(REDIS_URL, **env)
        self.settings = settings_for(self.env)
        self.node = f"rerank-load-{uuid.uuid4().hex[:6]}@localhost"
        args = ["--device", "cpu", "--no-int8", "--model", str(model_dir), "--hostname", self.node]
        self.worker = WorkerProcess(args, self.env, log_dir / f"{self.node}.log")
        self.dispatcher: CeleryDispatcher | None = None

    def __enter__(self) -> Pool:
        self.worker.start()
        self.worker.wait_ready()
        self.dispatcher = CeleryDispatcher.from_settings(self.settings)
        self.dispatcher.liveness_cache_seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.worker.stop()
        delete_prefixed_keys(REDIS_URL, self.settings.queue_prefix)

    def cached(self, query: str, texts: list[str]) -> list[bool]:
        entry = self.dispatcher.live_workers(refresh=True)[0]
        namespace = f"{entry['model_id']}@{entry['revision']}|{entry['backend']}|{entry['dtype']}|{entry['max_length']}"
        cache = RedisScoreCache(REDIS_URL, key_prefix=self.settings.cache_key_prefix)
        return [value is not None for value in cache.get_many(pair_cache_keys(namespace, query, texts))]


@pytest.fixture(autouse=True)
def _redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")


@pytest.fixture
def slow_pool(tiny_model_dir, tmp_path) -> Iterator[Pool]:
    """A worker whose model scores at most 25 pairs/s, whatever the machine (fewer when the machine is busy)."""
    with Pool(tiny_model_dir, tmp_path, **{TEST_PAIR_DELAY_ENV: "0.04"}) as pool:
        yield pool


def test_an_expired_job_is_never_scored(tiny_model_dir, tmp_path):
    with Pool(tiny_model_dir, tmp_path, **{TEST_JOB_DELAY_ENV: "0.5"}) as pool:
        app = pool.dispatcher.app

        def send(query: str, texts: list[str], deadline_in: float):
            job = {"query": query, "passages": texts, "deadline_at": time.time() + deadline_in}
            # No Celery ``expires``: the worker's own deadline check is what is under test.
            result = app.send_task(RERANK_TASK_NAME, kwargs={"job": job}, queue=QUEUE_CPU)
            return result.get(timeout=30, propagate=False), result.state

        before, state = send("baseline", passages("a", 4), deadline_in=30)
        assert state == "SUCCESS"
        expired, state = send("too late", passages("b", 6), deadline_in=0.2)  # held 0.5 s: past its deadline
        assert state == "FAILURE" and type(expired).__name__ == "RerankTimeout"
        assert "deadline passed before it was scored" in str(expired)
        after, state = send("fresh", passages("c", 3), deadline_in=30)
        assert state == "SUCCESS"
        assert after["extra"]["model_pairs_total"] == before["extra"]["model_pairs_total"] + 3  # none of the 6
        assert pool.cached("too late", passages("b", 6)) == [False] * 6
        deadline = time.monotonic() + 15  # the heartbeat carries the counter
        while time.monotonic() < deadline:
            entry = pool.dispatcher.live_workers(refresh=True)[0]
            if entry["batches"]["expired_jobs"] >= 1:
                break
            time.sleep(0.5)
        assert entry["batches"]["expired_jobs"] == 1 and entry["batches"]["skipped_pairs"] == 6
        assert entry["batches"]["late_seconds"] == 0


def test_a_slow_worker_gets_smaller_depths(tiny_model_dir, tmp_path, slow_pool):
    job = RerankJob("wireless headphones", passages("depth", 100), min_depth=10)
    with Pool(tiny_model_dir, tmp_path) as fast_pool:
        fast = fast_pool.dispatcher.dispatch(job, deadline_seconds=3.0)
    slow = slow_pool.dispatcher.dispatch(job, deadline_seconds=3.0)
    fast_rate = fast.extra["depth_decision"]["pairs_per_second"]
    slow_rate = slow.extra["depth_decision"]["pairs_per_second"]
    assert slow_rate <= 25 and slow_rate < fast_rate  # each measured its own throughput and advertised it
    # At most 25 pairs/s and 3 s: (3 - 0.15 s overhead) x 0.7 safety x 25 = 49 pairs, scored completely in time.
    assert 10 <= len(slow.raw_scores) == slow.extra["depth_decision"]["depth"] <= 50
    assert len(slow.raw_scores) < len(fast.raw_scores)
    assert not slow.partial and not fast.partial
    # A deadline that not even the minimum depth fits is shed at once, nothing queued.
    started = time.monotonic()
    with pytest.raises(RerankShed):
        slow_pool.dispatcher.dispatch(RerankJob("wireless headphones", passages("shed", 100), min_depth=30), 0.5)
    assert time.monotonic() - started < 0.3


def test_a_partial_result_is_used_and_labelled(slow_pool, shop_services):
    dispatcher = slow_pool.dispatcher
    dispatcher.pool_throughput = lambda queue: 10_000.0  # an estimate far too optimistic: the deadline hits mid-job
    search = SearchService(
        shop_services.index, dispatcher, NoExperiment(RankingConfig()), deadline_ms=1200, min_rerank_depth=5
    )
    # The deadline counts from the start of the search: run this query's first stage once (index open, query
    # vector cached; nothing scored) so the 1.2 s are the rerank's, not a cold encoder's on a busy machine.
    search.head_passages("wireless headphones", 10)
    result = search.search("wireless headphones", limit=100)
    assert result.rerank_status == "partial" and result.reranked
    assert result.candidates > result.rerank_depth >= 5
    depth = result.rerank_depth
    head, rest = result.hits[:depth], result.hits[depth:]
    assert all(hit.rerank_score is not None for hit in head) and all(hit.rerank_score is None for hit in rest)
    assert sorted(hit.first_stage_rank for hit in head) == list(range(1, depth + 1))  # the head was scored
    assert [hit.first_stage_rank for hit in rest] == list(range(depth + 1, len(result.hits) + 1))
    scores = [hit.rerank_score for hit in head]
    assert scores == sorted(scores, reverse=True)
    assert result.timings_ms["rerank"] < 1200 + 300
    # What was scored is cached; what was not, is not.
    texts = search.head_passages("wireless headphones", result.candidates)
    cached = slow_pool.cached("wireless headphones", texts)
    assert all(cached[:depth]) and not any(cached[depth + 20 :])


def test_warming_never_delays_a_live_job(slow_pool):
    warm_query = "warm head query"
    warm_texts = passages("warm", 150)  # 6 s of model work or more at 25 pairs/s
    WarmQueue.from_url(REDIS_URL, slow_pool.settings.queue_prefix).push(QUEUE_CPU, [(warm_query, warm_texts)])
    deadline = time.monotonic() + 15
    while not any(slow_pool.cached(warm_query, warm_texts[:16])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(slow_pool.cached(warm_query, warm_texts[:16])), "the worker never started warming"
    started = time.monotonic()
    live = slow_pool.dispatcher.dispatch(RerankJob("live query", passages("live", 20), min_depth=10), 5.0)
    waited = time.monotonic() - started
    assert len(live.raw_scores) == 20 and not live.partial
    # 20 pairs take about 0.8 s; behind the warming they would wait for 5 s more. At most one warming step.
    assert waited < 3.0, f"the live job took {waited:.2f} s"
    assert live.extra["batch_wait_seconds"] < 1.0
    assert not all(slow_pool.cached(warm_query, warm_texts))  # the warming was still under way
    deadline = time.monotonic() + 30
    while not all(slow_pool.cached(warm_query, warm_texts[-10:])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(slow_pool.cached(warm_query, warm_texts))  # and it finished afterwards
