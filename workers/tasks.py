"""The rerank task: a thin, idempotent shell around the process's ``WorkerRuntime``.

Idempotent by construction: the answer depends only on the payload and the model, the
only side effects are cache writes of those same scores, and the result is stored
under the caller's task id. A job redelivered after its worker died is therefore safe
to run again; one whose result is already stored is not even recomputed
(``worker_deduplicate_successful_tasks``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from reranking.dispatch import RerankError, RerankRejected, RerankTimeout, RerankUnavailable
from shoprank.observability import metrics
from shoprank.observability.logs import bound_request_id, valid_request_id
from workers.celery_app import RERANK_TASK_NAME
from workers.runtime import current_runtime

log = logging.getLogger(__name__)
_batches = metrics.ScorerStatsRecorder("worker")
_deadlines = metrics.DeadlineStatsRecorder()

#: Expected outcomes, logged as one line instead of a traceback.
EXPECTED_ERRORS = (RerankRejected, RerankUnavailable, RerankTimeout)


def register_tasks(app: Celery) -> None:
    """Register the rerank task on ``app`` (workers only; clients send it by name)."""

    @app.task(name=RERANK_TASK_NAME, bind=True, typing=False, throws=EXPECTED_ERRORS)
    def rerank_job(self: Task[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        with bound_request_id(job_request_id(kwargs)):  # worker log lines carry the search's request id
            return _run(self, args, kwargs)


def job_request_id(kwargs: Mapping[str, Any] | None) -> str | None:
    """The job's ``request_id`` when it is a well-formed id; the payload is validated properly later."""
    job = (kwargs or {}).get("job")
    value = job.get("request_id") if isinstance(job, Mapping) else None
    return valid_request_id(value)


def _run(task: Task[..., Any], args: Any, kwargs: Any) -> dict[str, Any]:
    runtime = current_runtime()
    if runtime is None:
        metrics.RERANK_JOBS.labels("unavailable").inc()
        raise RerankUnavailable("this worker process has no model loaded")
    delivery = task.request.delivery_info or {}
    started = time.perf_counter()
    try:
        answer = runtime.run_job(args, kwargs, redelivered=bool(delivery.get("redelivered")), task_id=task.request.id)
    except SoftTimeLimitExceeded:
        _deadlines.record(runtime.job_scorer.stats.snapshot())
        metrics.RERANK_JOBS.labels("timeout").inc()
        log.warning("rerank job %s exceeded the soft time limit", task.request.id)
        raise RerankTimeout("the job exceeded the worker's soft time limit") from None
    except RerankError as exc:
        _deadlines.record(runtime.job_scorer.stats.snapshot())
        metrics.RERANK_JOBS.labels(type(exc).__name__).inc()
        log.info("rerank job %s not served: %s: %s", task.request.id, type(exc).__name__, exc)
        raise
    except Exception as exc:
        metrics.RERANK_JOBS.labels("error").inc()
        log.exception("rerank job %s failed", task.request.id)
        # Only the type and message travel back (JSON); the traceback stays in the worker log.
        raise RerankError(f"worker failed: {type(exc).__name__}: {exc}") from exc
    _deadlines.record(runtime.job_scorer.stats.snapshot())
    metrics.RERANK_JOBS.labels("partial" if answer.get("partial") else "ok").inc()
    metrics.record_cache("worker", int(answer.get("cache_hits") or 0), int(answer.get("cache_misses") or 0))
    _batches.record(id(runtime.reranker.scorer), runtime.reranker.scorer.stats.snapshot())
    log.info(
        "rerank job %s served: %d passages, %d from cache, %.1f ms",
        task.request.id,
        len(answer.get("raw_scores") or ()),
        int(answer.get("cache_hits") or 0),
        (time.perf_counter() - started) * 1000,
    )
    return answer
