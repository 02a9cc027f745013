"""Celery rerank workers for real: worker subprocesses, the shared Redis, the tiny cross-encoder.

Every test session gets its own key prefix (queues, unacked bookkeeping, control
channels, registry, cache, results), so helpers running the suite at the same time on
the same Redis never see each other's jobs. Workers are started by fixtures in their
own process groups and always stopped.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REDIS_URL, free_port, service_missing

from reranking.dispatch import (
    DispatchResult,
    RerankJob,
    RerankRejected,
    RerankTimeout,
    RerankUnavailable,
)
from shopctl.cli import cli
from shoprank.config import Settings
from workers.celery_app import QUEUE_CPU, QUEUE_GPU, RERANK_TASK_NAME
from workers.client import CeleryDispatcher
from workers.ops import live_workers, queue_depths
from workers.registry import WorkerRegistry
from workers.runtime import TEST_JOB_DELAY_ENV
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for
from workers.worker_main import available_cores

PASSAGES = [f"Title: Product {i}\nDescription: {'wireless ' * (i % 5)}headphones" for i in range(12)]


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")


@pytest.fixture(scope="session")
def worker_env() -> Iterator[dict[str, str]]:
    _require_redis()
    env = isolated_environment(REDIS_URL)
    yield env
    delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


@pytest.fixture(scope="session")
def worker_settings(worker_env) -> Settings:
    return settings_for(worker_env)


@pytest.fixture(scope="session")
def cpu_worker(worker_env, tiny_model_dir, tmp_path_factory) -> Iterator[WorkerProcess]:
    """The session's CPU worker: one process, threads pool, cross-request batching on.

    fp32, so scores can be compared exactly: INT8 dynamic quantization scales activations
    per batch, so an INT8 pair's score moves slightly with whatever shares its batch.
    """
    log = tmp_path_factory.mktemp("workers") / "cpu-worker.log"
    args = ["--device", "cpu", "--no-int8", "--model", str(tiny_model_dir), "--hostname", "rerank-cpu-test@localhost"]
    worker = WorkerProcess(args, worker_env, log)
    with worker:
        worker.wait_ready()
        yield worker


@pytest.fixture
def dispatcher(worker_settings, cpu_worker) -> Iterator[CeleryDispatcher]:
    d = CeleryDispatcher.from_settings(worker_settings)
    yield d
    d.close()


def test_a_job_round_trips_with_the_in_process_scores_and_order(dispatcher, tiny_scorer_fp32):
    result = dispatcher.dispatch(RerankJob("wireless headphones", PASSAGES, request_id="req-1"), deadline_seconds=30)
    assert isinstance(result, DispatchResult)
    expected = np.asarray(tiny_scorer_fp32.compute_score([("wireless headphones", p) for p in PASSAGES]))
    assert np.allclose(result.raw_scores, expected, atol=1e-5)
    assert list(np.argsort(-np.asarray(result.raw_scores), kind="stable")) == list(np.argsort(-expected, kind="stable"))
    assert np.allclose(result.normalized_scores, tiny_scorer_fp32.normalize(expected), atol=1e-5)
    assert result.served_by == "rerank-cpu-test@localhost" and result.queue == QUEUE_CPU
    assert result.scorer["kind"] == "cross-encoder" and result.scorer["dtype"] == "fp32"
    assert result.extra["request_id"] == "req-1" and result.extra["routing"] == "no live gpu worker"


def test_cache_hits_skip_the_model(dispatcher):
    job = RerankJob(f"cache probe {uuid.uuid4().hex}", PASSAGES)
    first = dispatcher.dispatch(job, deadline_seconds=30)
    assert (first.cache_hits, first.cache_misses) == (0, len(PASSAGES))
    # Fully cached: answered by the web side from the workers' cache, no job enqueued.
    again = dispatcher.dispatch(job, deadline_seconds=30)
    assert (again.cache_hits, again.cache_misses) == (len(PASSAGES), 0)
    assert again.served_by == "score-cache" and again.queue is None and again.extra["would_queue"] == QUEUE_CPU
    assert again.raw_scores == first.raw_scores
    assert again.normalized_scores == pytest.approx(first.normalized_scores, abs=1e-6)
    assert again.scorer == first.scorer
    # Without the short-circuit the worker answers from its cache, and its model counter does not move.
    short_circuit, dispatcher.score_cache = dispatcher.score_cache, None
    try:
        via_worker = dispatcher.dispatch(job, deadline_seconds=30)
    finally:
        dispatcher.score_cache = short_circuit
    assert via_worker.served_by != "score-cache" and via_worker.cache_hits == len(PASSAGES)
    assert via_worker.extra["model_pairs_total"] == first.extra["model_pairs_total"]
    half = dispatcher.dispatch(RerankJob(job.query, PASSAGES[:6] + ["Title: something new"]), deadline_seconds=30)
    assert (half.cache_hits, half.cache_misses) == (6, 1)
    assert half.extra["model_pairs_total"] == first.extra["model_pairs_total"] + 1


def test_concurrent_jobs_are_merged_into_shared_batches(dispatcher, tiny_scorer_fp32):
    """Eight jobs in flight at once: every answer is right, and some were scored in one round."""
    merged = 0
    for attempt in range(3):
        jobs = [RerankJob(f"burst {attempt} query {i} {uuid.uuid4().hex[:6]}", PASSAGES * 4) for i in range(8)]
        results: dict[int, DispatchResult] = {}

        def run(i: int, jobs=jobs, results=results) -> None:
            results[i] = dispatcher.dispatch(jobs[i], deadline_seconds=60)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert len(results) == 8
        for i, job in enumerate(jobs):
            expected = tiny_scorer_fp32.compute_score([(job.query, p) for p in job.passages])
            assert np.allclose(results[i].raw_scores, expected, atol=1e-5)
        merged = max(r.extra["batch_jobs"] for r in results.values())
        if merged > 1:
            break
    assert merged > 1, "no two concurrent jobs were ever scored in the same round"


def test_gpu_queue_is_chosen_only_while_a_gpu_worker_is_alive(worker_settings, cpu_worker, tiny_model_dir):
    dispatcher = CeleryDispatcher.from_settings(worker_settings)
    dispatcher.liveness_cache_seconds = 0.0  # see every registry change at once
    registry = WorkerRegistry.from_url(worker_settings.redis_url, worker_settings.queue_prefix)
    fake_gpu = "rerank-cuda-test@gpu-host#1"
    try:
        job = RerankJob(f"routing {uuid.uuid4().hex}", PASSAGES[:3])
        assert dispatcher.choose_queue(job)[0] == QUEUE_CPU
        assert dispatcher.dispatch(job, deadline_seconds=30).queue == QUEUE_CPU

        # A GPU worker advertises itself exactly as a real one does (no GPU here to run one).
        registry.advertise(
            fake_gpu,
            {
                "node": "rerank-cuda-test@gpu-host",
                "device": "cuda",
                "device_family": "cuda",
                "queue": QUEUE_GPU,
                "model": str(tiny_model_dir),
                "model_id": str(tiny_model_dir),
                "dtype": "fp16",
                "max_length": 512,
            },
        )
        assert dispatcher.choose_queue(job) == (QUEUE_GPU, "gpu worker alive")
        with pytest.raises(RerankTimeout):  # nobody consumes rerank.gpu: the job waits there
            dispatcher.dispatch(job, deadline_seconds=0.5)
        assert queue_depths(worker_settings)[QUEUE_GPU] == 1
        # Fresh queries from here on: a fully cached job is answered from the cache without any queue.
        preferred = dispatcher.dispatch(RerankJob(f"{job.query} cpu", job.passages, device_preference="cpu"), 30)
        assert preferred.queue == QUEUE_CPU and preferred.extra["routing"] == "preferred cpu"
        summary = live_workers(worker_settings)
        assert summary["workers_per_device"] == {"cuda": 1, "cpu": 1}

        registry.withdraw(fake_gpu)  # the GPU worker is gone: back to the CPU queue
        assert (
            dispatcher.dispatch(RerankJob(f"{job.query} again", job.passages), deadline_seconds=30).queue == QUEUE_CPU
        )
    finally:
        registry.withdraw(fake_gpu)
        dispatcher.app.control.purge()  # drop the job stranded on our own (prefixed) rerank.gpu
        dispatcher.close()


def test_malformed_payloads_are_rejected_with_a_clear_error(dispatcher):
    with pytest.raises(RerankRejected, match="job.query must be a non-empty string"):
        dispatcher.dispatch(RerankJob("  ", PASSAGES), deadline_seconds=5)  # caught before it is sent
    bad_payloads = [
        ({"job": {"query": "q", "passages": "Title: not a list"}}, "job.passages must be a list of strings"),
        ({"job": {"query": "q", "passages": ["ok", {"title": "x"}]}}, "job.passages[1] must be a string, got dict"),
        ({"job": {"query": "q", "passages": []}, "sort": "desc"}, "unexpected keyword argument(s) 'sort'"),
        ({"query": "q"}, "missing keyword argument 'job'"),
        ({"job": ["q", "Title: a"]}, "job must be a JSON object, got list"),
    ]
    for kwargs, message in bad_payloads:  # a producer that skipped validation: the worker rejects the job
        result = dispatcher.app.send_task(RERANK_TASK_NAME, kwargs=kwargs, queue=QUEUE_CPU)
        error = result.get(timeout=30, propagate=False)
        assert result.state == "FAILURE" and isinstance(error, RerankRejected), (kwargs, error)
        assert message in str(error)
    assert dispatcher.dispatch(RerankJob("still serving", PASSAGES[:2]), deadline_seconds=30).raw_scores


def test_a_job_for_a_model_no_worker_serves_is_unavailable(dispatcher):
    with pytest.raises(RerankUnavailable, match="serving model 'BAAI/some-other-reranker'"):
        dispatcher.dispatch(RerankJob("q", PASSAGES, model="BAAI/some-other-reranker"), deadline_seconds=5)


def test_unreachable_broker_fails_fast_with_a_clear_error(worker_settings, cpu_worker):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    everything_down = CeleryDispatcher.from_settings(worker_settings.replace(redis_url=dead, broker_url=dead))
    broker_down = CeleryDispatcher.from_settings(worker_settings.replace(broker_url=dead))  # registry still up
    try:
        for d in (everything_down, broker_down):
            started = time.monotonic()
            with pytest.raises(RerankUnavailable, match="127.0.0.1"):
                d.dispatch(RerankJob("q", PASSAGES), deadline_seconds=30)
            assert time.monotonic() - started < 10, "the caller waited on a dead broker"
            started = time.monotonic()
            with pytest.raises(RerankUnavailable, match="unreachable"):  # and the next search does not even try
                d.dispatch(RerankJob("q", PASSAGES), deadline_seconds=30)
            assert time.monotonic() - started < 1
            assert "error" in d.describe()
    finally:
        everything_down.close()
        broker_down.close()


def test_ops_view_and_health_commands(worker_env, worker_settings, cpu_worker):
    summary = live_workers(worker_settings)
    [node] = [w for w in summary["workers"] if w["node"] == "rerank-cpu-test@localhost"]
    dispatcher = CeleryDispatcher.from_settings(worker_settings)
    described = dispatcher.describe()
    dispatcher.close()
    assert described["routes_to"] == QUEUE_CPU and described["queues"] == {QUEUE_GPU: 0, QUEUE_CPU: 0}
    assert described["scorer"]["kind"] == "cross-encoder" and described["scorer"]["dtype"] == "fp32"
    assert (node["device"], node["dtype"], node["max_length"], node["kind"]) == ("cpu", "fp32", 512, "cross-encoder")
    assert set(queue_depths(worker_settings)) == {QUEUE_GPU, QUEUE_CPU}
    runner = CliRunner()
    env = {k: v for k, v in worker_env.items() if k.startswith("SHOPRANK_")}
    healthy = runner.invoke(cli, ["worker-health", "--hostname", "rerank-cpu-test@localhost"], env=env)
    assert healthy.exit_code == 0, healthy.output
    missing = runner.invoke(cli, ["worker-health", "--hostname", "rerank-cpu-nobody@localhost"], env=env)
    assert missing.exit_code != 0 and "no live rerank worker heartbeat" in missing.output
    status = runner.invoke(cli, ["worker-status"], env=env)
    assert status.exit_code == 0 and "rerank-cpu-test@localhost: cpu fp32" in status.output


# -- fault tolerance ----------------------------------------------------------------------------------


def test_a_worker_killed_mid_job_has_its_job_redelivered_to_another_worker(tiny_model_dir, tmp_path):
    """SIGKILL the whole worker while it holds a job: acks_late keeps the job, another worker finishes it."""
    _require_redis()
    env = isolated_environment(REDIS_URL)
    settings = settings_for(env)
    # A holds every job for a minute (fault injection), so the kill lands mid-job. B treats jobs unacked
    # for 3 s as abandoned (a short visibility timeout, hence short time limits).
    doomed = WorkerProcess(
        ["--device", "cpu", "--model", str(tiny_model_dir), "--hostname", "doomed@localhost"],
        env | {TEST_JOB_DELAY_ENV: "60"},
        tmp_path / "doomed.log",
    )
    rescuer = WorkerProcess(
        ["--device", "cpu", "--model", str(tiny_model_dir), "--hostname", "rescuer@localhost"],
        env
        | {
            "SHOPRANK_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
            "SHOPRANK_RERANK_SOFT_TIME_LIMIT_SECONDS": "1.5",
            "SHOPRANK_RERANK_HARD_TIME_LIMIT_SECONDS": "2",
        },
        tmp_path / "rescuer.log",
    )
    dispatcher = CeleryDispatcher.from_settings(settings)
    outcome: dict[str, object] = {}
    try:
        with doomed:
            doomed.wait_ready()
            with pytest.raises(RerankTimeout):  # the caller's deadline holds even while the worker stalls
                dispatcher.dispatch(RerankJob("short deadline", PASSAGES[:2]), deadline_seconds=0.5)
            job = RerankJob("redeliver me", PASSAGES)

            def wait_for_answer() -> None:
                try:
                    outcome["result"] = dispatcher.dispatch(job, deadline_seconds=120)
                except Exception as exc:  # reported by the assertions below
                    outcome["error"] = exc

            caller = threading.Thread(target=wait_for_answer)
            caller.start()
            inspect = dispatcher.app.control.inspect(destination=["doomed@localhost"], timeout=1.0)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                active = (inspect.active() or {}).get("doomed@localhost") or []
                if any(task["kwargs"]["job"]["query"] == "redeliver me" for task in active):
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the doomed worker never started the job")
            doomed.kill()  # SIGKILL, mid-job: no ack, no result
            assert doomed.wait(10) < 0
        with rescuer:
            rescuer.wait_ready()
            caller.join(120)
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert isinstance(result, DispatchResult)
        assert result.served_by == "rescuer@localhost" and result.extra["redelivered"] is True
        assert len(result.raw_scores) == len(PASSAGES)
    finally:
        dispatcher.close()
        delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


def test_a_prefork_child_killed_mid_job_has_its_job_requeued(tiny_model_dir, tmp_path):
    """CPU prefork: SIGKILL the child holding a job; reject_on_worker_lost requeues it for the other child."""
    _require_redis()
    env = isolated_environment(REDIS_URL, **{TEST_JOB_DELAY_ENV: "5"})
    settings = settings_for(env)
    worker = WorkerProcess(
        ["--device", "cpu", "--concurrency", "2", "--model", str(tiny_model_dir), "--hostname", "prefork@localhost"],
        env,
        tmp_path / "prefork.log",
    )
    dispatcher = CeleryDispatcher.from_settings(settings)
    outcome: dict[str, object] = {}
    try:
        with worker:
            entries = worker.wait_ready(processes=2)
            assert {e["pool"] for e in entries} == {"prefork"}
            assert {e["torch_threads"] for e in entries} == {max(1, available_cores() // 2)}

            def wait_for_answer() -> None:
                try:
                    outcome["result"] = dispatcher.dispatch(RerankJob("requeue me", PASSAGES), deadline_seconds=90)
                except Exception as exc:
                    outcome["error"] = exc

            caller = threading.Thread(target=wait_for_answer)
            caller.start()
            inspect = dispatcher.app.control.inspect(destination=["prefork@localhost"], timeout=1.0)
            deadline, victim = time.monotonic() + 60, None
            while victim is None and time.monotonic() < deadline:
                active = (inspect.active() or {}).get("prefork@localhost") or []
                victim = next((t["worker_pid"] for t in active if t.get("worker_pid")), None)
                time.sleep(0.1)
            assert victim, "no child started the job"
            os.kill(victim, 9)
            caller.join(90)
            assert "error" not in outcome, outcome.get("error")
            result = outcome["result"]
            assert result.extra["pid"] != victim and result.extra["redelivered"] is True
    finally:
        dispatcher.close()
        delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_a_worker_without_its_model_exits_non_zero_with_a_clear_line(tiny_model_dir, tmp_path, concurrency):
    """Missing weights (checked before Celery starts) and corrupt weights (found while loading, in the
    serving process or in a prefork child) both stop the worker with status 3 instead of a fallback."""
    _require_redis()
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((Path(tiny_model_dir) / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    env = isolated_environment(REDIS_URL)
    cases = [(tmp_path / "no-such-model", "does not exist"), (broken, "SafetensorError")]
    if concurrency == "2":
        cases = cases[1:]  # the missing-directory check is the same code for both layouts
    for model, reason in cases:
        worker = WorkerProcess(
            ["--device", "cpu", "--concurrency", concurrency, "--model", str(model), "--hostname", "broken@localhost"],
            env,
            tmp_path / f"{model.name}-{concurrency}.log",
        )
        with worker:
            assert worker.wait(180) == 3
        log = worker.log_text()
        assert "FATAL: rerank worker cannot load its model" in log and reason in log, log[-3000:]
        assert "FALLING BACK" not in log
    delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA device (GPU worker, fp16, rerank.gpu)"
)
def test_a_gpu_worker_serves_the_gpu_queue_in_fp16(tiny_model_dir, tmp_path, tiny_scorer_fp32):
    _require_redis()
    env = isolated_environment(REDIS_URL)
    settings = settings_for(env)
    worker = WorkerProcess(
        ["--device", "cuda", "--model", str(tiny_model_dir), "--hostname", "gpu@localhost"], env, tmp_path / "gpu.log"
    )
    dispatcher = CeleryDispatcher.from_settings(settings)
    try:
        with worker:
            [entry] = worker.wait_ready()
            assert entry["device_family"] == "cuda" and entry["dtype"] == "fp16"
            result = dispatcher.dispatch(RerankJob("wireless headphones", PASSAGES), deadline_seconds=60)
            assert result.queue == QUEUE_GPU and result.scorer["dtype"] == "fp16"
            expected = tiny_scorer_fp32.compute_score([("wireless headphones", p) for p in PASSAGES])
            assert np.allclose(result.raw_scores, expected, atol=2e-2)
    finally:
        dispatcher.close()
        delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])
