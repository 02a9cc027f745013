"""Cross-request batching: jobs that arrive together share the model's forward passes.

A worker process takes several jobs at once (Celery's threads pool). Each job thread
hands its (query, passages) to one model thread, which collects what has arrived,
waits a few milliseconds more only while other jobs are known to be on their way,
and scores the lot with one ``Reranker.score_requests`` call: one cache lookup, one
token-budget batch plan over every pair, duplicates scored once. While a round runs,
new jobs queue up and form the next round, so under load batches grow by themselves
and at low load no job waits for company that is not coming.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from reranking.dispatch import RerankTimeout
from reranking.reranker import Reranker, ScoredRequest

log = logging.getLogger(__name__)

#: Exit status of a worker whose model thread exceeded the hard time limit (EX_SOFTWARE).
EXIT_MODEL_STUCK = 70
#: Upper bound on pairs merged into one round. Merging pays where single jobs underfill a
#: forward pass (GPUs, small jobs); once a round holds a few full token-budget batches, adding
#: more jobs only makes the first ones wait for the last (on a compute-bound CPU, a round of
#: eight 100-pair jobs answers all eight at the time the eighth would have been answered alone).
MAX_PAIRS_PER_ROUND = {"cuda": 1024, "cpu": 256}
DEFAULT_MAX_PAIRS_PER_ROUND = MAX_PAIRS_PER_ROUND["cuda"]


@dataclass(frozen=True, slots=True)
class BatchedScore:
    """One job's scores plus how its round went (reported back to the caller for observability)."""

    scored: ScoredRequest
    batch_jobs: int  # jobs merged into the round that scored this one
    batch_pairs: int  # pairs in that round, cached or not
    waited_seconds: float  # from hand-over to the start of its round
    round_seconds: float  # duration of the round


@dataclass
class BatcherStats:
    rounds: int = 0
    jobs: int = 0
    pairs: int = 0
    merged_rounds: int = 0  # rounds that served more than one job
    largest_round_jobs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, jobs: int, pairs: int) -> None:
        with self._lock:
            self.rounds += 1
            self.jobs += jobs
            self.pairs += pairs
            self.merged_rounds += jobs > 1
            self.largest_round_jobs = max(self.largest_round_jobs, jobs)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "rounds": self.rounds,
                "jobs": self.jobs,
                "pairs": self.pairs,
                "merged_rounds": self.merged_rounds,
                "largest_round_jobs": self.largest_round_jobs,
            }


class JobSlot(Protocol):
    def score(self, query: str, passages: Sequence[str], timeout: float | None) -> BatchedScore:
        """Scores for one job; ``RerankTimeout`` when ``timeout`` passes first."""


class JobScorer(Protocol):
    stats: BatcherStats

    def incoming(self) -> AbstractContextManager[JobSlot]:
        """Announce a job that will (probably) be scored soon; use the slot to score it."""

    def stop(self) -> None: ...


@dataclass
class _Pending:
    query: str
    passages: Sequence[str]
    future: Future[BatchedScore]
    handed_over: float


class MicroBatcher:
    """One model thread serving many job threads; see the module docstring for the policy."""

    def __init__(
        self,
        reranker: Reranker,
        max_wait_seconds: float = 0.005,
        max_pairs_per_round: int = DEFAULT_MAX_PAIRS_PER_ROUND,
        hard_time_limit_seconds: float | None = None,
        on_stuck: Callable[[float], None] | None = None,
    ) -> None:
        self.reranker = reranker
        self.max_wait_seconds = max_wait_seconds
        self.max_pairs_per_round = max_pairs_per_round
        self.stats = BatcherStats()
        self._pending: deque[_Pending] = deque()
        self._incoming = 0  # jobs announced but not yet handed over
        self._cond = threading.Condition()
        self._stopping = False
        self._round_started: float | None = None
        self._hard_limit = hard_time_limit_seconds
        self._on_stuck = on_stuck or _exit_stuck
        self._thread = threading.Thread(target=self._run, name="rerank-model", daemon=True)
        self._thread.start()
        if hard_time_limit_seconds:
            threading.Thread(target=self._watch, name="rerank-model-watchdog", daemon=True).start()

    @contextmanager
    def incoming(self) -> Iterator[_Slot]:
        with self._cond:
            self._incoming += 1
        slot = _Slot(self)
        try:
            yield slot
        finally:
            if not slot.handed_over:
                with self._cond:
                    self._incoming -= 1
                    self._cond.notify_all()

    def submit(self, query: str, passages: Sequence[str], announced: bool = False) -> Future[BatchedScore]:
        future: Future[BatchedScore] = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the model thread has stopped")
            if announced:
                self._incoming -= 1
            self._pending.append(_Pending(query, passages, future, time.monotonic()))
            self._cond.notify_all()
        return future

    def score(self, query: str, passages: Sequence[str], timeout: float | None = None) -> BatchedScore:
        return _wait(self.submit(query, passages), timeout)

    @property
    def pending_jobs(self) -> int:
        """Jobs handed over and waiting for the next round."""
        with self._cond:
            return len(self._pending)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # -- model thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._score_round(batch)

    def _collect(self) -> list[_Pending] | None:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if not self._pending:
                return None
            # Linger only while announced jobs are still on their way, and never past the window.
            deadline = time.monotonic() + self.max_wait_seconds
            while self._incoming > 0 and self._pending_pairs() < self.max_pairs_per_round:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Pending] = []
            pairs = 0
            while self._pending and (not batch or pairs + len(self._pending[0].passages) <= self.max_pairs_per_round):
                item = self._pending.popleft()
                if item.future.set_running_or_notify_cancel():  # False: its caller gave up while it queued
                    batch.append(item)
                    pairs += len(item.passages)
            return batch

    def _pending_pairs(self) -> int:
        return sum(len(item.passages) for item in self._pending)

    def _score_round(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        started = time.monotonic()
        self._round_started = started
        try:
            results = self.reranker.score_requests([(item.query, item.passages) for item in batch])
        except BaseException as exc:  # every waiting job must hear about the failure
            for item in batch:
                item.future.set_exception(exc)
            return
        finally:
            self._round_started = None
        elapsed = time.monotonic() - started
        pairs = sum(len(item.passages) for item in batch)
        self.stats.record(len(batch), pairs)
        for item, scored in zip(batch, results, strict=True):
            item.future.set_result(BatchedScore(scored, len(batch), pairs, started - item.handed_over, elapsed))

    def _watch(self) -> None:
        assert self._hard_limit is not None
        while not self._stopping:
            time.sleep(min(1.0, self._hard_limit / 4))
            started = self._round_started
            if started is not None and time.monotonic() - started > self._hard_limit:
                self._on_stuck(time.monotonic() - started)
                return


class _Slot:
    def __init__(self, batcher: MicroBatcher) -> None:
        self._batcher = batcher
        self.handed_over = False

    def score(self, query: str, passages: Sequence[str], timeout: float | None) -> BatchedScore:
        if self.handed_over:
            raise RuntimeError("a slot scores one job")
        future = self._batcher.submit(query, passages, announced=True)
        self.handed_over = True
        return _wait(future, timeout)


def _wait(future: Future[BatchedScore], timeout: float | None) -> BatchedScore:
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()  # still queued: it will never be computed
        raise RerankTimeout(f"no scores within the worker's soft time limit ({timeout:.1f} s)") from None


def _exit_stuck(elapsed: float) -> None:
    """A forward pass that never returns (hung GPU, deadlock) cannot be interrupted from Python.

    Exiting is the only way out: the process manager restarts the worker, and every job
    it held (acks_late) goes back to the queue for a healthy worker.
    """
    log.critical(
        "model thread stuck in one round for %.0f s (over the hard time limit); exiting with status %d "
        "so that the jobs this worker holds are redelivered to another worker",
        elapsed,
        EXIT_MODEL_STUCK,
    )
    logging.shutdown()
    os._exit(EXIT_MODEL_STUCK)


class UnbatchedScorer:
    """The same interface without cross-request batching: each job thread scores its own job.

    Kept for comparison (``shoprank worker --no-batching``, ``bench/workers.py``) and for
    prefork children, which only ever hold one job.
    """

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker
        self.stats = BatcherStats()

    @contextmanager
    def incoming(self) -> Iterator[_UnbatchedSlot]:
        yield _UnbatchedSlot(self)

    def score(self, query: str, passages: Sequence[str], timeout: float | None = None) -> BatchedScore:
        started = time.monotonic()
        scored = self.reranker.score(query, passages)
        self.stats.record(1, len(passages))
        return BatchedScore(scored, 1, len(passages), 0.0, time.monotonic() - started)

    def stop(self) -> None:
        return None


class _UnbatchedSlot:
    def __init__(self, scorer: UnbatchedScorer) -> None:
        self._scorer = scorer

    def score(self, query: str, passages: Sequence[str], timeout: float | None) -> BatchedScore:
        return self._scorer.score(query, passages, timeout)
