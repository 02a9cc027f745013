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
from reranking.dispatch import DispatchResult, RerankTimeout, RerankUnavailable
from shoprank.config import Settings
from workers.celery_app import device_family
from workers.jobs import result_to_payload, validate_job_payload, validate_task_arguments
from workers.microbatch import MAX_PAIRS_PER_ROUND, BatchedScore, MicroBatcher, UnbatchedScorer
from workers.registry import Heartbeat, WorkerRegistry

log = logging.getLogger(__name__)

#: Fault injection for the redelivery tests: hold every job this long before scoring it.
#: Honoured only when SHOPRANK_ENV=test, and announced loudly at start-up.
TEST_JOB_DELAY_ENV = "SHOPRANK_TEST_JOB_DELAY_SECONDS"


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
        self.test_delay = _test_delay(settings)

    @classmethod
    def load(cls, plan: WorkerPlan, settings: Settings) -> WorkerRuntime:
        """Load and warm up the cross-encoder; ``ModelLoadError`` instead of any fallback model."""
        spec = plan.spec.replace(allow_fallback=False)
        try:
            scorer = load_scorer(spec)
            if scorer.info.kind != "cross-encoder":
                raise ModelLoadError(f"{spec.model} loaded as {scorer.info.kind}, not a cross-encoder")
            scorer.warm_up()
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
        cache = RedisScoreCache(
            settings.redis_url, ttl_seconds=settings.score_cache_ttl_seconds, key_prefix=settings.cache_key_prefix
        )
        registry = WorkerRegistry.from_url(settings.redis_url, settings.queue_prefix) if settings.redis_url else None
        return cls(plan, settings, Reranker(scorer, cache), registry)

    def start_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.start()

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.job_scorer.stop()

    # -- serving ------------------------------------------------------------------------------------

    def run_job(self, args: Any, kwargs: Any, redelivered: bool = False) -> dict[str, Any]:
        """Validate, consult the cache, score the misses (merged with concurrent jobs), answer."""
        started = time.perf_counter()
        started_wall = time.time()
        with self.job_scorer.incoming() as slot:
            payload, enqueued_at = validate_task_arguments(args, kwargs)
            job = validate_job_payload(payload, self.settings.rerank_max_documents, self.settings.max_query_chars)
            self._check_model(job.model)
            if self.test_delay:
                time.sleep(self.test_delay)
            batched = self._from_cache_only(job.query, job.passages)
            if batched is None:
                remaining = self.settings.rerank_soft_time_limit_seconds - (time.perf_counter() - started)
                if remaining <= 0:
                    raise RerankTimeout("the worker's soft time limit passed before scoring started")
                batched = slot.score(job.query, job.passages, timeout=remaining)
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

    def _from_cache_only(self, query: str, passages: list[str]) -> BatchedScore | None:
        """Answer a fully cached job in this thread, without queueing behind the model.

        A partially cached job returns None and goes through ``score_requests``, which
        looks its keys up again (one extra MGET) and scores only the misses.
        """
        if not passages:
            return BatchedScore(ScoredRequest(np.empty(0, dtype=np.float32), 0, 0), 1, 0, 0.0, 0.0)
        raw = cached_scores(self.reranker.cache, self.reranker.info.cache_namespace, query, passages)
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
            "scorer_stats": self.reranker.scorer.stats.snapshot(),
            "cache_stats": self.reranker.cache.stats.snapshot(),
        }


def _test_delay(settings: Settings) -> float:
    raw = os.environ.get(TEST_JOB_DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    if settings.env != "test":
        log.warning("%s is set but ignored outside SHOPRANK_ENV=test", TEST_JOB_DELAY_ENV)
        return 0.0
    delay = float(raw)
    log.warning("FAULT INJECTION: every job is held %.1f s before scoring (%s)", delay, TEST_JOB_DELAY_ENV)
    return delay


_runtime: WorkerRuntime | None = None


def install_runtime(runtime: WorkerRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def current_runtime() -> WorkerRuntime | None:
    return _runtime
