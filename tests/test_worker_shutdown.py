"""A rerank worker told to stop (SIGTERM, as Kubernetes does when it scales a pool down) loses no job.

Kubernetes sends SIGTERM to the container's first process, waits ``terminationGracePeriodSeconds`` and then
SIGKILLs what is left. The chart relies on two things, both tested here with real worker processes, Redis and
the tiny cross-encoder: a job the worker holds when SIGTERM arrives is finished and answered before the worker
exits (Celery's warm shutdown), and a job that outlasts the grace period is not lost: it was never acknowledged
(``acks_late``), so another worker runs it once the broker's visibility timeout gives it back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from conftest import REDIS_URL, service_missing

from reranking.dispatch import DispatchResult, RerankJob
from workers.client import CeleryDispatcher
from workers.registry import WorkerRegistry
from workers.runtime import TEST_JOB_DELAY_ENV
from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for

PASSAGES = [f"Title: Lamp {i}\nDescription: {'warm ' * (i % 4)}desk lamp" for i in range(10)]


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")


def _dispatch_in_background(dispatcher: CeleryDispatcher, job: RerankJob, outcome: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            outcome["result"] = dispatcher.dispatch(job, deadline_seconds=120)
        except Exception as exc:  # reported by the assertions
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_until_active(dispatcher: CeleryDispatcher, node: str, query: str) -> None:
    inspect = dispatcher.app.control.inspect(destination=[node], timeout=1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        active = (inspect.active() or {}).get(node) or []
        if any(task["kwargs"]["job"]["query"] == query for task in active):
            return
        time.sleep(0.2)
    pytest.fail(f"{node} never started the job")


def test_sigterm_mid_job_finishes_the_job_then_exits_cleanly(tiny_model_dir, tmp_path):
    """Scale-down: the job in hand is answered by the stopping worker, which then exits 0 and leaves routing."""
    _require_redis()
    env = isolated_environment(REDIS_URL)
    settings = settings_for(env)
    node = "stopping@localhost"
    # Every job is held 4 s before scoring, so SIGTERM lands mid-job.
    worker = WorkerProcess(
        ["--device", "cpu", "--no-int8", "--model", str(tiny_model_dir), "--hostname", node],
        env | {TEST_JOB_DELAY_ENV: "4"},
        tmp_path / "stopping.log",
    )
    dispatcher = CeleryDispatcher.from_settings(settings)
    outcome: dict[str, Any] = {}
    try:
        with worker:
            worker.wait_ready()
            caller = _dispatch_in_background(dispatcher, RerankJob("finish me", PASSAGES), outcome)
            _wait_until_active(dispatcher, node, "finish me")
            assert worker.process is not None
            signalled = time.monotonic()
            os.kill(worker.process.pid, signal.SIGTERM)  # to the main process only, as the kubelet does
            status = worker.wait(timeout=45)
            stopped_after = time.monotonic() - signalled
            caller.join(30)
        assert status == 0, worker.log_text()[-3000:]
        assert stopped_after < 45  # well inside the chart's 60 s grace period
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert isinstance(result, DispatchResult)
        assert result.served_by == node and not result.extra.get("redelivered")
        assert len(result.raw_scores) == len(PASSAGES)
        registry = WorkerRegistry.from_url(REDIS_URL, settings.queue_prefix)
        assert all(entry.get("node") != node for entry in registry.live())  # routing stops sending it jobs at once
    finally:
        dispatcher.close()
        delete_prefixed_keys(REDIS_URL, env["SHOPRANK_QUEUE_PREFIX"])


def test_a_job_that_outlasts_the_grace_period_is_redelivered_after_the_kill(tiny_model_dir, tmp_path):
    """SIGTERM, then SIGKILL when the grace period ends mid-job: the unacknowledged job runs on another worker."""
    _require_redis()
    env = isolated_environment(REDIS_URL)
    settings = settings_for(env)
    slow = WorkerProcess(
        ["--device", "cpu", "--no-int8", "--model", str(tiny_model_dir), "--hostname", "slow@localhost"],
        env | {TEST_JOB_DELAY_ENV: "60"},
        tmp_path / "slow.log",
    )
    # The rescuer treats jobs unacknowledged for 3 s as abandoned (short visibility timeout, so short limits).
    rescuer = WorkerProcess(
        ["--device", "cpu", "--no-int8", "--model", str(tiny_model_dir), "--hostname", "rescuer@localhost"],
        env
        | {
            "SHOPRANK_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
            "SHOPRANK_RERANK_SOFT_TIME_LIMIT_SECONDS": "1.5",
            "SHOPRANK_RERANK_HARD_TIME_LIMIT_SECONDS": "2",
        },
        tmp_path / "rescuer.log",
    )
    dispatcher = CeleryDispatcher.from_settings(settings)
    outcome: dict[str, Any] = {}
    grace_seconds = 3
    try:
        with slow:
            slow.wait_ready()
            caller = _dispatch_in_background(dispatcher, RerankJob("hand me back", PASSAGES), outcome)
            _wait_until_active(dispatcher, "slow@localhost", "hand me back")
            assert slow.process is not None
            os.kill(slow.process.pid, signal.SIGTERM)
            time.sleep(grace_seconds)
            assert slow.process.poll() is None  # still finishing its job: warm shutdown waits for it
            slow.kill(signal.SIGKILL)  # the grace period is over
            slow.wait(10)
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
