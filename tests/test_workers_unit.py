"""Rerank workers without a broker: payload rules, process layouts, Celery settings, cross-request batching."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from reranking import MemoryScoreCache, Reranker
from reranking.dispatch import RerankJob, RerankRejected, RerankTimeout
from shoprank.config import ConfigError, Settings
from workers.celery_app import QUEUE_CPU, QUEUE_GPU, RERANK_TASK_NAME, create_celery_app
from workers.jobs import result_from_payload, validate_job_payload, validate_task_arguments
from workers.microbatch import MicroBatcher, UnbatchedScorer
from workers.ops import summarize_workers
from workers.worker_main import WorkerOptions, plan_worker

REPO = Path(__file__).resolve().parent.parent
GOOD = {"query": "headphones", "passages": ["Title: A", "Title: B"]}


def test_a_valid_payload_becomes_a_job():
    job = validate_job_payload(GOOD | {"device_preference": "cuda", "request_id": "r-1"}, 10, 100)
    assert job == RerankJob("headphones", ["Title: A", "Title: B"], request_id="r-1", device_preference="cuda")
    assert validate_job_payload(RerankJob("q", []).to_payload(), 10, 100).passages == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["headphones"], "must be a JSON object"),
        ({"passages": ["a"]}, "job.query must be a non-empty string"),
        (GOOD | {"query": "   "}, "job.query must be a non-empty string"),
        (GOOD | {"query": "x" * 101}, "101 characters; the limit is 100"),
        (GOOD | {"passages": "Title: A"}, "job.passages must be a list of strings, got str"),
        (GOOD | {"passages": ["ok", 7]}, r"job.passages\[1\] must be a string, got int"),
        (GOOD | {"passages": ["p"] * 11}, "11 entries; the limit is 10"),
        (GOOD | {"device_preference": "tpu"}, "device_preference must be 'cpu', 'cuda' or null"),
        (GOOD | {"model": 3}, "job.model must be a non-empty string or null"),
        (GOOD | {"top_n": 3}, "unknown job field.*'top_n'"),
    ],
)
def test_malformed_payloads_are_rejected_with_the_reason(payload, message):
    with pytest.raises(RerankRejected, match=message):
        validate_job_payload(payload, max_documents=10, max_query_chars=100)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (["q", ["p"]], {}, "keyword arguments only"),
        ([], {"query": "q"}, "missing keyword argument 'job'"),
        ([], {"job": GOOD, "priority": 1}, "unexpected keyword argument.*'priority'"),
        ([], {"job": GOOD, "enqueued_at": "yesterday"}, "enqueued_at must be a number"),
    ],
)
def test_malformed_task_arguments_are_rejected(args, kwargs, message):
    with pytest.raises(RerankRejected, match=message):
        validate_task_arguments(args, kwargs)


def test_results_round_trip_through_json_shapes():
    payload = {
        "raw_scores": [1.5],
        "normalized_scores": [0.8],
        "cache_hits": 0,
        "cache_misses": 1,
        "scorer": {"kind": "cross-encoder"},
        "served_by": "rerank-cpu@h",
        "compute_seconds": 0.01,
        "queue": QUEUE_CPU,
        "extra": {"batch_jobs": 2},
        "from_a_newer_worker": True,  # ignored, not fatal
    }
    result = result_from_payload(payload)
    assert result.served_by == "rerank-cpu@h" and result.queue == QUEUE_CPU and result.extra == {"batch_jobs": 2}


# -- process layout ---------------------------------------------------------------------------------


def test_cpu_default_is_one_batching_process_using_every_core():
    plan = plan_worker(WorkerOptions(device="cpu", hostname="n@h"), Settings.from_env({}), cores=8)
    assert (plan.pool, plan.processes, plan.jobs_in_flight, plan.torch_threads, plan.batching) == (
        "threads",
        1,
        8,
        8,
        True,
    )
    assert plan.queue == QUEUE_CPU and plan.spec.allow_fallback is False and plan.spec.num_threads == 8


def test_cpu_concurrency_splits_cores_between_prefork_processes():
    plan = plan_worker(WorkerOptions(device="cpu", concurrency=4), Settings.from_env({}), cores=8)
    assert (plan.pool, plan.processes, plan.torch_threads, plan.jobs_in_flight) == ("prefork", 4, 2, 1)
    assert plan.node.startswith("rerank-cpu@")
    scaled = plan_worker(WorkerOptions(device="cpu", autoscale=(3, 1)), Settings.from_env({}), cores=8)
    assert (scaled.pool, scaled.processes, scaled.torch_threads) == ("prefork", 3, 2)


def test_cuda_runs_one_process_per_gpu():
    plan = plan_worker(WorkerOptions(device="cuda", jobs_in_flight=16), Settings.from_env({}), cores=8)
    assert (plan.pool, plan.processes, plan.jobs_in_flight, plan.queue) == ("threads", 1, 16, QUEUE_GPU)
    assert plan.torch_threads is None
    with pytest.raises(ConfigError, match="one process per GPU"):
        plan_worker(WorkerOptions(device="cuda", concurrency=2), Settings.from_env({}))
    solo = plan_worker(WorkerOptions(device="cuda", jobs_in_flight=1), Settings.from_env({}))
    assert solo.pool == "solo" and solo.batching is False


# -- Celery settings --------------------------------------------------------------------------------


def test_celery_app_is_json_only_and_acks_late():
    settings = Settings.from_env({"SHOPRANK_REDIS_URL": "redis://127.0.0.1:1/0", "SHOPRANK_QUEUE_PREFIX": "p:"})
    for role in ("client", "worker"):
        conf = create_celery_app(settings, role=role).conf
        assert conf.accept_content == ["json"] and conf.result_accept_content == ["json"]
        assert conf.task_serializer == conf.result_serializer == "json"
        assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
        assert conf.result_expires == settings.rerank_result_expires_seconds
        assert conf.task_time_limit == 60 and conf.task_soft_time_limit == 30
        assert {q.name for q in conf.task_queues} == {QUEUE_GPU, QUEUE_CPU}
        assert conf.task_routes[RERANK_TASK_NAME]["queue"] == QUEUE_CPU
        assert conf.broker_transport_options["global_keyprefix"] == "p:"
    client = create_celery_app(settings, role="client").conf
    assert client.broker_connection_retry is False and client.task_publish_retry is False
    assert client.broker_transport_options["socket_connect_timeout"] <= 1.0
    assert client.broker_transport_options["max_retries"] == 0


def test_celery_needs_redis_and_consistent_time_limits():
    with pytest.raises(ConfigError, match="SHOPRANK_REDIS_URL"):
        create_celery_app(Settings.from_env({}))
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT"):
        Settings.from_env({"SHOPRANK_BROKER_VISIBILITY_TIMEOUT_SECONDS": "30"})
    with pytest.raises(ConfigError, match="SOFT_TIME_LIMIT"):
        Settings.from_env({"SHOPRANK_RERANK_SOFT_TIME_LIMIT_SECONDS": "90"})


# -- cross-request batching -------------------------------------------------------------------------


class GatedScorer:
    """A real scorer whose first call waits for ``gate``: holds the model thread so jobs pile up."""

    def __init__(self, scorer):
        self._scorer, self.gate, self.calls = scorer, threading.Event(), []
        self.info, self.stats = scorer.info, scorer.stats

    def score_pairs(self, pairs, max_batch_size=None):
        self.calls.append(len(pairs))
        if len(self.calls) == 1:
            assert self.gate.wait(10)
        return self._scorer.score_pairs(pairs)

    def normalize(self, raw):
        return self._scorer.normalize(raw)


def _jobs(n: int) -> list[tuple[str, list[str]]]:
    return [(f"query {i}", [f"Title: product {i}-{j}" for j in range(5)]) for i in range(n)]


def test_jobs_arriving_while_the_model_is_busy_share_one_round(tiny_scorer_fp32):
    scorer = GatedScorer(tiny_scorer_fp32)
    batcher = MicroBatcher(Reranker(scorer, MemoryScoreCache()), max_wait_seconds=0.005)
    jobs = _jobs(8)
    results: dict[int, object] = {}

    def submit(i: int) -> None:
        results[i] = batcher.score(*jobs[i], timeout=30)

    try:
        first = threading.Thread(target=submit, args=(0,))
        first.start()
        deadline = time.monotonic() + 10
        while not scorer.calls and time.monotonic() < deadline:  # round 1 (job 0 alone) is running
            time.sleep(0.005)
        others = [threading.Thread(target=submit, args=(i,)) for i in range(1, 8)]
        for t in others:
            t.start()
        while batcher.pending_jobs < 7 and time.monotonic() < deadline:
            time.sleep(0.005)
        scorer.gate.set()
        for t in [first, *others]:
            t.join(30)
    finally:
        scorer.gate.set()
        batcher.stop()
    assert scorer.calls == [5, 35]  # one model call for job 0, one for the seven that queued behind it
    assert results[0].batch_jobs == 1 and all(results[i].batch_jobs == 7 for i in range(1, 8))
    for i, (query, passages) in enumerate(jobs):  # merging never mixes up whose scores are whose
        expected = tiny_scorer_fp32.score_pairs([(query, p) for p in passages])
        assert np.allclose(results[i].scored.raw_scores, expected, atol=1e-5)
    assert batcher.stats.snapshot()["merged_rounds"] == 1


def test_a_job_that_times_out_while_queued_is_never_computed(tiny_scorer_fp32):
    scorer = GatedScorer(tiny_scorer_fp32)
    batcher = MicroBatcher(Reranker(scorer))
    try:
        blocker = threading.Thread(target=lambda: batcher.score("q0", ["Title: a"], timeout=30))
        blocker.start()
        while not scorer.calls:
            time.sleep(0.005)
        with pytest.raises(RerankTimeout, match="soft time limit"):
            batcher.score("q1", ["Title: b"], timeout=0.05)
        scorer.gate.set()
        blocker.join(10)
        assert batcher.score("q2", ["Title: c"], timeout=30).batch_jobs == 1
    finally:
        scorer.gate.set()
        batcher.stop()
    assert scorer.calls == [1, 1]  # q1 was dropped, not scored for nobody


def test_a_model_error_reaches_every_job_of_the_round(tiny_scorer_fp32):
    class Broken(GatedScorer):
        def score_pairs(self, pairs, max_batch_size=None):
            raise RuntimeError("CUDA error: device-side assert")

    batcher = MicroBatcher(Reranker(Broken(tiny_scorer_fp32)))
    try:
        for query in ("q1", "q2"):  # the second answer proves the model thread survived the first error
            with pytest.raises(RuntimeError, match="device-side assert"):
                batcher.score(query, ["Title: a"], timeout=10)
    finally:
        batcher.stop()


def test_a_stuck_model_round_triggers_the_hard_limit(tiny_scorer_fp32):
    stuck_for: list[float] = []
    scorer = GatedScorer(tiny_scorer_fp32)
    batcher = MicroBatcher(Reranker(scorer), hard_time_limit_seconds=0.2, on_stuck=stuck_for.append)
    try:
        threading.Thread(target=lambda: batcher.score("q", ["Title: a"], timeout=10), daemon=True).start()
        deadline = time.monotonic() + 10
        while not stuck_for and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        scorer.gate.set()
        batcher.stop()
    assert stuck_for and stuck_for[0] > 0.2


def test_unbatched_scorer_gives_the_same_scores(tiny_scorer_fp32):
    reranker = Reranker(tiny_scorer_fp32)
    with UnbatchedScorer(reranker).incoming() as slot:
        scored = slot.score("q", ["Title: a", "Title: b"], timeout=None)
    assert np.allclose(scored.scored.raw_scores, tiny_scorer_fp32.score_pairs([("q", "Title: a"), ("q", "Title: b")]))


# -- ops ----------------------------------------------------------------------------------------------


def test_workers_are_counted_per_device_and_node():
    entries = [
        {"node": "rerank-cpu@a", "device": "cpu", "device_family": "cpu", "dtype": "int8", "jobs_served": 3},
        {"node": "rerank-cpu@a", "device": "cpu", "device_family": "cpu", "dtype": "int8", "jobs_served": 4},
        {"node": "rerank-cuda@b", "device": "cuda", "device_family": "cuda", "dtype": "fp16", "max_length": 512},
    ]
    summary = summarize_workers(entries)
    assert summary["workers_per_device"] == {"cuda": 1, "cpu": 1}
    assert summary["processes_per_device"] == {"cuda": 1, "cpu": 2}
    cpu = next(w for w in summary["workers"] if w["node"] == "rerank-cpu@a")
    assert cpu["processes"] == 2 and cpu["jobs_served"] == 7


def test_compose_file_defines_scalable_cpu_and_gpu_workers():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis-broker", "redis-cache", "worker-cpu", "worker-gpu"} <= set(services)
    cpu, gpu = services["worker-cpu"], services["worker-gpu"]
    assert "container_name" not in cpu  # `docker compose up --scale worker-cpu=N` needs unnamed containers
    assert "--device" in cpu["command"] and "cpu" in cpu["command"]
    assert "--device" in gpu["command"] and "cuda" in gpu["command"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for service in (cpu, gpu):
        assert "worker-health" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["redis-broker"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis-cache"]["condition"] == "service_healthy"
        assert service["environment"]["SHOPRANK_REDIS_URL"].startswith("redis://redis-cache")
        assert service["environment"]["SHOPRANK_BROKER_URL"].startswith("redis://redis-broker")
    assert "healthcheck" in services["redis-broker"] and "healthcheck" in services["redis-cache"]


def test_a_pool_shed_for_ten_seconds_gets_one_job_at_the_minimum_depth(redis_url, unique_prefix):
    """Issue 22 item 3: with every search shed on a low estimate no job reaches the pool and the estimate never
    changes; a queue that got no job for 10 s gets the next one at the minimum depth, which measures it again."""
    from workers.client import CeleryDispatcher
    from workers.registry import WorkerRegistry
    from workers.testing import delete_prefixed_keys, isolated_environment, settings_for

    settings = settings_for(isolated_environment(redis_url, prefix=unique_prefix))
    dispatcher = CeleryDispatcher.from_settings(settings)
    registry = WorkerRegistry.from_url(settings.redis_url, settings.queue_prefix)
    now = [1000.0]
    dispatcher.clock = lambda: now[0]
    try:
        registry.advertise(
            "slow@host#1",
            {"node": "slow@host", "device": "cpu", "device_family": "cpu", "queue": QUEUE_CPU, "pairs_per_second": 2.0},
        )
        dispatcher.live_workers(refresh=True)
        job = RerankJob("kettle", [f"passage {i}" for i in range(100)], min_depth=10)
        assert dispatcher._choose_depth(job, QUEUE_CPU, 1.0).shed
        now[0] += 5
        assert dispatcher._choose_depth(job, QUEUE_CPU, 1.0).shed
        now[0] += 6  # 11 s without a job for this pool
        explored = dispatcher._choose_depth(job, QUEUE_CPU, 1.0)
        assert not explored.shed and explored.depth == 10 and "exploring" in explored.reason
        assert dispatcher._choose_depth(job, QUEUE_CPU, 1.0).shed  # one, then the estimate decides again
    finally:
        dispatcher.close()
        delete_prefixed_keys(redis_url, unique_prefix)
