"""Everything one worker process holds once its model is loaded, and how it answers a job.

A process has exactly one ``WorkerRuntime``: the cross-encoder (loaded once, after any
fork), the Redis pair-score cache, the model thread that merges concurrent jobs, and
the heartbeat that advertises what this process serves. The Celery task is a thin
shell around ``WorkerRuntime.run_job``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reranking import RedisScoreCache, Reranker, ScoredRequest, ScorerSpec, load_scorer
from reranking.cache import cached_scores
from reranking.dispatch import DispatchResult, RerankJob, RerankTimeout, RerankUnavailable
from shoprank.config import Settings
from workers.backlog import Backlog
from workers.celery_app import device_family
from workers.jobs import result_to_payload, validate_job_payload, validate_task_arguments
from workers.microbatch import MAX_PAIRS_PER_ROUND, BatchedScore, JobDeadline, MicroBatcher, UnbatchedScorer
from workers.registry import Heartbeat, WorkerRegistry
from workers.warming import WarmFeeder, WarmQueue

log = logging.getLogger(__name__)

#: Fault injection for the redelivery tests: hold every job this long before scoring it.
#: Honoured only when SHOPRANK_ENV=test, and announced loudly at start-up.
TEST_JOB_DELAY_ENV = "SHOPRANK_TEST_JOB_DELAY_SECONDS"
#: Fault injection for the depth-policy tests: a slow model, this many seconds per pair scored (test env only).
TEST_PAIR_DELAY_ENV = "SHOPRANK_TEST_PAIR_DELAY_SECONDS"
#: With TEST_PAIR_DELAY_ENV: the model is slow only for this many seconds after start-up (test env only).
TEST_SLOW_START_ENV = "SHOPRANK_TEST_SLOW_START_SECONDS"
#: The worker's scores must reach the caller before its deadline: result write and the client's polling.
RETURN_MARGIN_SECONDS = 0.08
#: Calibration at start-up: pairs of about this many words, so the first heartbeat already carries a throughput.
CALIBRATION_PAIRS = 16


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """How this worker runs: decided once from the command line, inherited by prefork children."""

    device: str  # "cpu", "cuda" or "cuda:N"
    node: str  # Celery node name, e.g. rerank-cpu@host
    queue: str  # rerank.gpu or rerank.cpu
    pool: str  # threads, solo or prefork
    processes: int  # model processes (each loads its own copy)
    jobs_in_flight: int  # jobs one process takes at once and merges
    torch_threads: int | None  # intra-op threads per process (CPU)
    batching: bool
    spec: ScorerSpec

    def describe(self) -> dict[str, Any]:
        described = asdict(self)
        described["spec"] = asdict(self.spec)
        return described


class ModelLoadError(RuntimeError):
    """The worker's cross-encoder could not be loaded; the worker must not serve."""


class WorkerRuntime:
    def __init__(
        self,
        plan: WorkerPlan,
        settings: Settings,
        reranker: Reranker,
        registry: WorkerRegistry | None = None,
        backlog: Backlog | None = None,
        warm_queue: WarmQueue | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.reranker = reranker
        self.entry_id = f"{plan.node}#{os.getpid()}"
        self.started_at = time.time()
        self.jobs_served = 0
        if plan.batching:
            self.job_scorer: MicroBatcher | UnbatchedScorer = MicroBatcher(
                reranker,
                max_wait_seconds=settings.worker_batch_wait_ms / 1000,
                max_pairs_per_round=MAX_PAIRS_PER_ROUND[device_family(plan.device)],
                hard_time_limit_seconds=settings.rerank_hard_time_limit_seconds,
            )
        else:
            self.job_scorer = UnbatchedScorer(reranker)
        self.heartbeat = Heartbeat(registry, self.entry_id, self.advertisement) if registry is not None else None
        self.test_delay = _test_delay(settings, TEST_JOB_DELAY_ENV, "every job is held %.3f s before scoring")
        self.backlog = backlog
        self.warm_feeder: WarmFeeder | None = None
        if warm_queue is not None and isinstance(self.job_scorer, MicroBatcher):
            self.warm_feeder = WarmFeeder(self.job_scorer, warm_queue, plan.queue, settings.rerank_max_documents)

    @classmethod
    def load(cls, plan: WorkerPlan, settings: Settings) -> WorkerRuntime:
        """Load and warm up the cross-encoder; ``ModelLoadError`` instead of any fallback model."""
        spec = plan.spec.replace(allow_fallback=False)
        try:
            scorer = load_scorer(spec)
            if scorer.info.kind != "cross-encoder":
                raise ModelLoadError(f"{spec.model} loaded as {scorer.info.kind}, not a cross-encoder")
            _slow_down_for_tests(scorer, settings)
            scorer.warm_up()
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
        cache = RedisScoreCache(
            settings.redis_url or "", ttl_seconds=settings.score_cache_ttl_seconds, key_prefix=settings.cache_key_prefix
        )
        registry = backlog = warm_queue = None
        if settings.redis_url:
            registry = WorkerRegistry.from_url(settings.redis_url, settings.queue_prefix)
            backlog = Backlog.from_url(settings.redis_url, settings.queue_prefix)
            warm_queue = WarmQueue.from_url(settings.redis_url, settings.queue_prefix)
        runtime = cls(plan, settings, Reranker(scorer, cache), registry, backlog, warm_queue)
        runtime.calibrate()
        return runtime

    def calibrate(self) -> None:
        """Measure pairs/s on shop-sized pairs (~100 tokens), so routing sees a throughput before the first job.

        Two passes: the first pays one-off kernel set-up for these shapes and is not counted.
        """
        words = " ".join(f"word{i}" for i in range(30))
        pairs = [
            (f"calibration query {i}", f"Title: product {i}\nDescription: {words}") for i in range(CALIBRATION_PAIRS)
        ]
        self.reranker.scorer.score_pairs(pairs)
        started = time.monotonic()
        self.reranker.scorer.score_pairs(pairs)
        seconds = time.monotonic() - started
        if seconds > 0:  # the value a stale low estimate recovers toward (reranking.depth.ThroughputMeter)
            self.job_scorer.meter.calibrated(len(pairs) / seconds)

    def start_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.start()
        if self.warm_feeder is not None:
            self.warm_feeder.start()

    def close(self) -> None:
        if self.warm_feeder is not None:
            self.warm_feeder.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.job_scorer.stop()

    # -- serving ------------------------------------------------------------------------------------

    def run_job(self, args: Any, kwargs: Any, redelivered: bool = False, task_id: str | None = None) -> dict[str, Any]:
        """Validate, consult the cache, score the misses (merged with concurrent jobs), answer."""
        job = None
        try:
            payload, enqueued_at = validate_task_arguments(args, kwargs)
            job = validate_job_payload(payload, self.settings.rerank_max_documents, self.settings.max_query_chars)
            return self._serve(job, enqueued_at, redelivered)
        finally:
            if job is not None and task_id and self.backlog is not None:
                try:  # the web tier's depth policy stops counting this job's pairs as queued work
                    self.backlog.remove(self.plan.queue, task_id)
                except Exception as exc:  # the entry expires with the job's deadline anyway
                    log.debug("could not clear backlog entry %s: %s", task_id, exc)

    def _serve(self, job: RerankJob, enqueued_at: float | None, redelivered: bool) -> dict[str, Any]:
        started = time.perf_counter()
        started_wall = time.time()
        expires = None
        if job.deadline_at is not None:  # the caller's wall-clock deadline, as this process's monotonic instant
            expires = time.monotonic() + (job.deadline_at - started_wall) - RETURN_MARGIN_SECONDS
        with self.job_scorer.incoming() as slot:
            self._check_model(job.model)
            if self.test_delay:
                time.sleep(self.test_delay)
            batched = self._from_cache_only(job.query, job.passages, job.passage_tokens)
            if batched is None:
                remaining = self.settings.rerank_soft_time_limit_seconds - (time.perf_counter() - started)
                if remaining <= 0:
                    raise RerankTimeout("the worker's soft time limit passed before scoring started")
                if expires is not None and time.monotonic() >= expires:
                    self.job_scorer.stats.add(expired_jobs=1, skipped_pairs=len(job.passages))
                    raise RerankTimeout("the job's deadline passed before it was scored")
                deadline = None if expires is None else JobDeadline(expires, job.min_depth)
                batched = slot.score(
                    job.query, job.passages, timeout=remaining, deadline=deadline, passage_tokens=job.passage_tokens
                )
        raw = batched.scored.raw_scores
        normalized = self.reranker.scorer.normalize(raw)
        self.jobs_served += 1
        result = DispatchResult(
            raw_scores=[float(s) for s in raw],
            normalized_scores=[float(s) for s in normalized],
            cache_hits=batched.scored.cache_hits,
            cache_misses=batched.scored.cache_misses,
            scorer=self.reranker.info.as_dict(),
            served_by=self.plan.node,
            compute_seconds=time.perf_counter() - started,
            queue=self.plan.queue,
            partial=not batched.complete,
            extra={
                "pid": os.getpid(),
                "request_id": job.request_id,
                "redelivered": redelivered,
                "queue_wait_seconds": None if enqueued_at is None else max(0.0, started_wall - enqueued_at),
                "batch_jobs": batched.batch_jobs,
                "batch_pairs": batched.batch_pairs,
                "batch_wait_seconds": batched.waited_seconds,
                "model_pairs_total": self.reranker.scorer.stats.pairs_scored,
            },
        )
        return result_to_payload(result)

    def _check_model(self, requested: str | None) -> None:
        if requested is None or requested in (self.plan.spec.model, self.reranker.info.model_id):
            return
        raise RerankUnavailable(f"worker {self.plan.node} serves {self.reranker.info.model_id}, not {requested}")

    def _from_cache_only(
        self, query: str, passages: list[str], passage_tokens: int | None = None
    ) -> BatchedScore | None:
        """Answer a fully cached job in this thread, without queueing behind the model.

        A partially cached job returns None and goes through ``score_requests``, which
        looks its keys up again (one extra MGET) and scores only the misses.
        """
        if not passages:
            return BatchedScore(ScoredRequest(np.empty(0, dtype=np.float32), 0, 0), 1, 0, 0.0, 0.0)
        raw = cached_scores(self.reranker.cache, self.reranker.namespace(passage_tokens), query, passages)
        if raw is None:
            return None
        scored = ScoredRequest(raw, cache_hits=len(passages), cache_misses=0)
        return BatchedScore(scored, 1, len(passages), 0.0, 0.0)

    # -- advertisement ------------------------------------------------------------------------------

    def advertisement(self) -> dict[str, Any]:
        """What the web tier routes on and the ops page shows; refreshed with every heartbeat."""
        info = self.reranker.info
        return {
            "node": self.plan.node,
            "entry": self.entry_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": info.device,
            "device_family": device_family(info.device),
            "queue": self.plan.queue,
            "model": self.plan.spec.model,
            "model_id": info.model_id,
            "revision": info.revision,
            "kind": info.kind,
            "backend": info.backend,
            "dtype": info.dtype,
            "max_length": info.max_length,
            "pool": self.plan.pool,
            "processes": self.plan.processes,
            "jobs_in_flight": self.plan.jobs_in_flight,
            "torch_threads": self.plan.torch_threads,
            "batching": self.plan.batching,
            "started_at": self.started_at,
            "heartbeat_at": time.time(),
            "jobs_served": self.jobs_served,
            "batches": self.job_scorer.stats.snapshot(),
            "pairs_per_second": self.job_scorer.meter.pairs_per_second,
            "scorer_stats": self.reranker.scorer.stats.snapshot(),
            "cache_stats": self.reranker.cache.stats.snapshot(),
        }


def _test_delay(settings: Settings, variable: str, what: str) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return 0.0
    if settings.env != "test":
        log.warning("%s is set but ignored outside SHOPRANK_ENV=test", variable)
        return 0.0
    delay = float(raw)
    log.warning("FAULT INJECTION: " + what + " (%s)", delay, variable)
    return delay


def _slow_down_for_tests(scorer: Any, settings: Settings) -> None:
    """A slow model on demand (``SHOPRANK_TEST_PAIR_DELAY_SECONDS``, test env only): the depth policy's tests."""
    delay = _test_delay(settings, TEST_PAIR_DELAY_ENV, "the model takes %.3f s more per pair")
    if not delay:
        return
    # only for the first N seconds, when set: a worker (re)started on a busy machine (the estimate-recovery test)
    slow_for = _test_delay(settings, TEST_SLOW_START_ENV, "... only for the first %.1f s")
    until = time.monotonic() + slow_for if slow_for else None
    fast = scorer.score_pairs

    def slow(pairs: Any, max_batch_size: int | None = None, passage_tokens: int | None = None) -> Any:
        if until is None or time.monotonic() < until:
            time.sleep(delay * len(pairs))
        return fast(pairs, max_batch_size, passage_tokens)

    scorer.score_pairs = slow


_runtime: WorkerRuntime | None = None


def install_runtime(runtime: WorkerRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def current_runtime() -> WorkerRuntime | None:
    return _runtime
