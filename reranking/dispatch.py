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

from reranking.depth import DepthDecision, DepthPolicy, PrefixScore, ThroughputMeter, choose_depth, score_prefix
from reranking.reranker import Reranker


class RerankError(Exception):
    """Reranking did not produce scores; callers fall back to first-stage order."""


class RerankTimeout(RerankError):
    """No answer before the caller's deadline."""


class RerankUnavailable(RerankError):
    """Nothing can score this job now (no worker, broker down, unknown model)."""


class RerankRejected(RerankError):
    """The job itself is invalid (empty query, too many passages); retrying will not help."""


class RerankShed(RerankError):
    """Not even the minimum depth could be scored before the deadline, so nothing was queued (load shedding)."""


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
    #: Unix time by which the caller needs the scores; a worker drops the job, or stops it, after that.
    deadline_at: float | None = None
    #: Search jobs set it: the dispatcher may score only a head of at least this many passages (deadline-aware
    #: depth), and a scorer stopped by the deadline answers with the head scored so far if it has this many.
    #: None: all or nothing (the rerank API).
    min_depth: int | None = None
    #: Passage token budget (an experiment variant's, or the deployment's as the search resolved it);
    #: None: the scorer's own default (``SHOPRANK_RERANK_PASSAGE_TOKENS``). See ``reranking.passage_budget``.
    passage_tokens: int | None = None

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
    #: The scores cover only a head of the passages: the deadline stopped the scorer after them.
    partial: bool = False


class RerankDispatcher(Protocol):
    def dispatch(self, job: RerankJob, deadline_seconds: float) -> DispatchResult:
        """Scores for ``job`` within ``deadline_seconds``, else a ``RerankError``."""

    def describe(self) -> dict[str, Any]:
        """What answers rerank jobs now (for ``/ready`` and the ops page)."""

    def warm(self, query: str, passages: list[str], model: str | None = None) -> None:
        """Score ``passages`` into the pair-score cache at low priority, never ahead of a live job."""


def execute_job(reranker: Reranker, job: RerankJob) -> DispatchResult:
    """Score one job with a loaded reranker; shared by the in-process path and the workers."""
    started = time.perf_counter()
    scored = reranker.score(job.query, job.passages, job.passage_tokens)
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
    Search jobs (``min_depth`` set) follow the same deadline-aware depth policy as the
    Celery path, with this process's own measured throughput and backlog, and are
    scored head-first in steps: a job whose caller timed out stops at the next step.
    Warming (``warm``) runs on the same thread but yields to live jobs at every step.
    """

    def __init__(
        self, rerankers: Mapping[str, Reranker], default_model: str, policy: DepthPolicy | None = None
    ) -> None:
        if default_model not in rerankers:
            raise ValueError(f"default model {default_model!r} has no reranker")
        self._rerankers = dict(rerankers)
        self._default = default_model
        self.policy = policy or DepthPolicy()
        self.meter = ThroughputMeter()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")
        self._lock = threading.Lock()
        self._backlog_pairs = 0
        self._live_waiting = 0
        self.skipped_expired = 0
        self.stopped_jobs = 0  # jobs stopped mid-way by their deadline or their caller
        self.warm_pairs = 0

    def dispatch(self, job: RerankJob, deadline_seconds: float) -> DispatchResult:
        reranker = self._rerankers.get(job.model or self._default)
        if reranker is None:
            raise RerankUnavailable(f"model {job.model!r} is not loaded in this process")
        started = time.monotonic()
        expires = started + deadline_seconds
        if job.deadline_at is not None:
            expires = min(expires, started + (job.deadline_at - time.time()))
        passages = list(job.passages)
        decision = None
        if job.min_depth is not None and passages:
            decision = choose_depth(
                self.policy,
                candidates=len(passages),
                seconds_left=expires - started,
                pairs_per_second=self.meter.pairs_per_second,
                backlog_pairs=self._backlog_pairs,
                min_depth=job.min_depth,
            )
            if decision.shed:
                raise RerankShed(f"shed: {decision.reason} before the deadline")
            passages = passages[: decision.depth]
        cancelled = threading.Event()
        adaptive = job.min_depth is not None

        def run() -> PrefixScore:
            with self._lock:
                self._live_waiting -= 1
            try:
                if time.monotonic() > expires:  # the caller gave up but cancel() lost the race
                    self._count("skipped_expired")
                    raise RerankTimeout("deadline passed while queued")
                prefix = score_prefix(
                    reranker,
                    job.query,
                    passages,
                    meter=self.meter,
                    expires=expires,
                    stop=cancelled.is_set,
                    adaptive=adaptive,
                    passage_tokens=job.passage_tokens,
                )
                if not prefix.complete:
                    self._count("stopped_jobs")
                return prefix
            finally:
                self._add_backlog(-len(passages))

        self._add_backlog(len(passages), live=True)
        future = self._pool.submit(run)
        try:
            prefix = future.result(timeout=max(0.0, expires - time.monotonic()))
        except FutureTimeout:
            cancelled.set()  # a running job stops at its next step instead of scoring for nobody
            if future.cancel():  # still queued: it will never run
                self._count("skipped_expired")
                self._add_backlog(-len(passages), live=True, delta_live=-1)
            raise RerankTimeout(f"no scores within {deadline_seconds * 1000:.0f} ms") from None
        except RerankError:
            raise
        except Exception as exc:  # a model error must not become a 500 in the search
            raise RerankError(f"in-process reranking failed: {exc}") from exc
        return self._answer(reranker, job, prefix, started, decision)

    def _answer(
        self, reranker: Reranker, job: RerankJob, prefix: PrefixScore, started: float, decision: DepthDecision | None
    ) -> DispatchResult:
        raw = prefix.scored.raw_scores
        if not prefix.complete and len(raw) < max(1, job.min_depth or 0):
            raise RerankTimeout(f"the deadline stopped scoring after {len(raw)} passages")
        normalized = reranker.scorer.normalize(raw)
        return DispatchResult(
            raw_scores=[float(s) for s in raw],
            normalized_scores=[float(s) for s in normalized],
            cache_hits=prefix.scored.cache_hits,
            cache_misses=prefix.scored.cache_misses,
            scorer=reranker.info.as_dict(),
            served_by="in-process",
            compute_seconds=time.monotonic() - started,
            extra={} if decision is None else {"depth_decision": decision.as_dict()},
            partial=not prefix.complete,
        )

    def warm(self, query: str, passages: list[str], model: str | None = None) -> None:
        """Score ``passages`` into the cache when the thread has nothing live to do; returns at once.

        The job runs step by step and goes to the back of the queue whenever a live job
        is waiting, so a live search waits for one warming step at most.
        """
        reranker = self._rerankers.get(model or self._default)
        if reranker is None or not passages:
            return

        def run() -> None:
            done = score_prefix(reranker, query, passages, meter=self.meter, stop=lambda: self._live_waiting > 0)
            scored = len(done.scored.raw_scores)
            self._count("warm_pairs", scored)
            if scored < len(passages):
                self._pool.submit(lambda: self.warm(query, passages[scored:], model))

        self._pool.submit(run)

    def _add_backlog(self, pairs: int, live: bool = False, delta_live: int = 1) -> None:
        with self._lock:
            self._backlog_pairs += pairs
            if live:
                self._live_waiting += delta_live

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def scorers(self) -> list[Any]:
        """The loaded scorers (the app hands catalog-fitted state, such as language centering, to them)."""
        return [reranker.scorer for reranker in self._rerankers.values()]

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "in-process",
            "default_model": self._default,
            "scorers": {name: r.info.as_dict() for name, r in self._rerankers.items()},
            "pairs_per_second": self.meter.pairs_per_second,
            "deadline": {
                "skipped_expired": self.skipped_expired,
                "stopped_jobs": self.stopped_jobs,
                "warm_pairs": self.warm_pairs,
            },
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
