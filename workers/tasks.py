"""The rerank task: a thin, idempotent shell around the process's ``WorkerRuntime``.

Idempotent by construction: the answer depends only on the payload and the model, the
only side effects are cache writes of those same scores, and the result is stored
under the caller's task id. A job redelivered after its worker died is therefore safe
to run again; one whose result is already stored is not even recomputed
(``worker_deduplicate_successful_tasks``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from reranking.dispatch import RerankError, RerankRejected, RerankTimeout, RerankUnavailable
from workers.celery_app import RERANK_TASK_NAME
from workers.runtime import current_runtime

#: Expected outcomes, logged as one line instead of a traceback.
EXPECTED_ERRORS = (RerankRejected, RerankUnavailable, RerankTimeout)


def register_tasks(app: Celery) -> None:
    """Register the rerank task on ``app`` (workers only; clients send it by name)."""

    @app.task(name=RERANK_TASK_NAME, bind=True, typing=False, throws=EXPECTED_ERRORS)
    def rerank_job(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
        runtime = current_runtime()
        if runtime is None:
            raise RerankUnavailable("this worker process has no model loaded")
        delivery = self.request.delivery_info or {}
        try:
            return runtime.run_job(args, kwargs, redelivered=bool(delivery.get("redelivered")))
        except SoftTimeLimitExceeded:
            raise RerankTimeout("the job exceeded the worker's soft time limit") from None
        except RerankError:
            raise
        except Exception as exc:
            # Only the type and message travel back (JSON); the traceback stays in the worker log.
            raise RerankError(f"worker failed: {type(exc).__name__}: {exc}") from exc
