"""How a search hands its rerank work to whoever scores it, under a deadline.

Two implementations share this contract: ``InProcessDispatcher`` (embedded mode, the
model lives in the web process) and the Celery dispatcher in ``workers.client``
(full stack, the model lives on GPU/CPU workers). The search flow only sees
``RerankDispatcher``: on ``RerankError`` of any kind it keeps first-stage order and
marks the response ``reranked: false``, so the reranker can never fail a search.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from reranking.reranker import Reranker


class RerankError(Exception):
    """Reranking did not produce scores; callers fall back to first-stage order."""


class RerankTimeout(RerankError):
    """No answer before the caller's deadline."""


class RerankUnavailable(RerankError):
    """Nothing can score this job now (no worker, broker down, unknown model)."""


class RerankRejected(RerankError):
    """The job itself is invalid (empty query, too many passages); retrying will not help."""


@dataclass(frozen=True, slots=True)
class RerankJob:
    query: str
    passages: list[str]
    #: Which model the experiment variant asked for; None = the default scorer.
    model: str | None = None
    #: Follows the search into logs and worker traces.
    request_id: str | None = None
    #: "cuda", "cpu" or None (any). Set by experiment variants; workers route on it.
    device_preference: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DispatchResult:
    raw_scores: list[float]  # input order
    normalized_scores: list[float]  # same order, in (0, 1)
    cache_hits: int
    cache_misses: int
    scorer: dict[str, Any]  # ScorerInfo.as_dict() of the model that answered
    served_by: str  # "in-process" or the worker's hostname
    compute_seconds: float
    queue: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RerankDispatcher(Protocol):
    def dispatch(self, job: RerankJob, deadline_seconds: float) -> DispatchResult:
        """Scores for ``job`` within ``deadline_seconds``, else a ``RerankError``."""

    def describe(self) -> dict[str, Any]:
        """What answers rerank jobs now (for ``/ready`` and the ops page)."""


def execute_job(reranker: Reranker, job: RerankJob) -> DispatchResult:
    """Score one job with a loaded reranker; shared by the in-process path and the workers."""
    started = time.perf_counter()
    scored = reranker.score(job.query, job.passages)
    normalized = reranker.scorer.normalize(scored.raw_scores)
    return DispatchResult(
        raw_scores=[float(s) for s in scored.raw_scores],
        normalized_scores=[float(s) for s in normalized],
        cache_hits=scored.cache_hits,
        cache_misses=scored.cache_misses,
        scorer=reranker.info.as_dict(),
        served_by="in-process",
        compute_seconds=time.perf_counter() - started,
    )


class InProcessDispatcher:
    """Embedded mode: the web process scores on a single background thread.

    One thread, because concurrent forward passes on the same cores only slow each
    other down. A job whose caller already gave up (deadline passed while queued) is
    skipped instead of computed, so a burst cannot build an ever-growing backlog.
    """

    def __init__(self, rerankers: Mapping[str, Reranker], default_model: str) -> None:
        if default_model not in rerankers:
            raise ValueError(f"default model {default_model!r} has no reranker")
        self._rerankers = dict(rerankers)
        self._default = default_model
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")
        self._lock = threading.Lock()
        self.skipped_expired = 0

    def dispatch(self, job: RerankJob, deadline_seconds: float) -> DispatchResult:
        reranker = self._rerankers.get(job.model or self._default)
        if reranker is None:
            raise RerankUnavailable(f"model {job.model!r} is not loaded in this process")
        expires_at = time.monotonic() + deadline_seconds

        def run() -> DispatchResult:
            if time.monotonic() > expires_at:  # the caller gave up but cancel() lost the race
                self._count_skipped()
                raise RerankTimeout("deadline passed while queued")
            return execute_job(reranker, job)

        future = self._pool.submit(run)
        try:
            return future.result(timeout=max(0.0, deadline_seconds))
        except FutureTimeout:
            if future.cancel():  # still queued: it will never run
                self._count_skipped()
            raise RerankTimeout(f"no scores within {deadline_seconds * 1000:.0f} ms") from None
        except RerankError:
            raise
        except Exception as exc:  # a model error must not become a 500 in the search
            raise RerankError(f"in-process reranking failed: {exc}") from exc

    def scorers(self) -> list[Any]:
        """The loaded scorers (the app hands catalog-fitted state, such as language centering, to them)."""
        return [reranker.scorer for reranker in self._rerankers.values()]

    def _count_skipped(self) -> None:
        with self._lock:
            self.skipped_expired += 1

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "in-process",
            "default_model": self._default,
            "scorers": {name: r.info.as_dict() for name, r in self._rerankers.items()},
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
