"""Cross-request batching under deadlines: jobs in flight share the model's forward passes.

A worker process takes several jobs at once (Celery's threads pool). Each job thread
hands its (query, passages) to one model thread, which scores every active job in
*steps*: a step takes the next slice of each job's passages (head first, in
first-stage order) and scores them with one ``Reranker.score_requests`` call (one
cache lookup, one token-budget batch plan, duplicates scored once). New jobs join at
the next step, so a job never waits for a long round to end, and at low load no job
waits for company that is not coming (the model thread lingers a few milliseconds
only while announced jobs are on their way).

Deadlines: a job carrying one is dropped unscored once it has passed, and is stopped
between steps when the next step would land after it; it then answers with the head
scored so far when the caller accepts a partial answer (``min_partial``), else with
``RerankTimeout``. Step size follows the measured throughput (about ``STEP_SECONDS``
of work), which is also the granularity at which warming (``submit_background``)
yields: background work runs only while no live job is active.
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
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from reranking.depth import EXPLORE_AFTER_SECONDS, MIN_STEP_PAIRS, ThroughputMeter, score_prefix
from reranking.dispatch import RerankTimeout
from reranking.reranker import Reranker, ScoredRequest

log = logging.getLogger(__name__)

#: Exit status of a worker whose model thread exceeded the hard time limit (EX_SOFTWARE).
EXIT_MODEL_STUCK = 70
#: Upper bound on live pairs active at once (and on one step of jobs without deadlines). Merging pays
#: where single jobs underfill a forward pass (GPUs, small jobs); once a step holds a few full
#: token-budget batches, adding more jobs only makes the first ones wait for the last.
MAX_PAIRS_PER_ROUND = {"cuda": 1024, "cpu": 256}
DEFAULT_MAX_PAIRS_PER_ROUND = MAX_PAIRS_PER_ROUND["cuda"]
#: Largest warming step: the most a live job that arrives during warming waits for.
BACKGROUND_STEP_PAIRS = 16


@dataclass(frozen=True, slots=True)
class BatchedScore:
    """One job's scores plus how its steps went (reported back to the caller for observability).

    ``scored.raw_scores`` covers the first ``len(raw_scores)`` passages; fewer than all
    (``complete`` False) when the deadline stopped the job.
    """

    scored: ScoredRequest
    batch_jobs: int  # most jobs merged into one step with this one
    batch_pairs: int  # pairs in the largest such step, cached or not
    waited_seconds: float  # from hand-over to its first step
    round_seconds: float  # from its first step to its answer
    complete: bool = True


@dataclass
class BatcherStats:
    rounds: int = 0  # model steps
    jobs: int = 0  # job-steps (a job scored in three steps counts three times)
    pairs: int = 0
    merged_rounds: int = 0  # steps that served more than one job
    largest_round_jobs: int = 0
    #: Deadline outcomes: dropped before any scoring, stopped with a partial answer, stopped with nothing.
    expired_jobs: int = 0
    partial_jobs: int = 0
    stopped_jobs: int = 0
    skipped_pairs: int = 0  # pairs of those jobs never scored
    #: Model work that finished after its job's deadline (nobody was waiting for it any more).
    late_pairs: int = 0
    late_seconds: float = 0.0
    background_pairs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, jobs: int, pairs: int) -> None:
        with self._lock:
            self.rounds += 1
            self.jobs += jobs
            self.pairs += pairs
            self.merged_rounds += jobs > 1
            self.largest_round_jobs = max(self.largest_round_jobs, jobs)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "rounds": self.rounds,
                "jobs": self.jobs,
                "pairs": self.pairs,
                "merged_rounds": self.merged_rounds,
                "largest_round_jobs": self.largest_round_jobs,
                "expired_jobs": self.expired_jobs,
                "partial_jobs": self.partial_jobs,
                "stopped_jobs": self.stopped_jobs,
                "skipped_pairs": self.skipped_pairs,
                "late_pairs": self.late_pairs,
                "late_seconds": round(self.late_seconds, 3),
                "background_pairs": self.background_pairs,
            }


@dataclass(frozen=True, slots=True)
class JobDeadline:
    """When a job's caller stops waiting, and the shortest head it can use instead of all scores."""

    expires: float  # a time.monotonic() instant
    min_partial: int | None = None  # None: all or nothing


@dataclass(eq=False)
class _Pending:
    query: str
    passages: Sequence[str]
    future: Future[BatchedScore]
    handed_over: float
    expires: float | None = None  # time.monotonic() instant
    min_partial: int | None = None  # None: all or nothing
    background: bool = False
    done: int = 0
    parts: list[np.ndarray] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    first_step: float | None = None
    merged: int = 1
    step_pairs: int = 0
    #: Which passages were cache misses when the job arrived (None: unknown, every pair counts as model work).
    uncached: np.ndarray | None = None
    #: The job's passage token budget (None: the deployment's).
    passage_tokens: int | None = None

    @property
    def remaining(self) -> int:
        return len(self.passages) - self.done

    def take(self, work: int) -> int:
        """Passages to take next so that about ``work`` of them are misses: cached ones ride along for free."""
        if self.uncached is None:
            return min(self.remaining, work)
        misses = np.cumsum(self.uncached[self.done :])
        return min(self.remaining, int(np.searchsorted(misses, work)) + 1)

    def work(self, count: int) -> int:
        """Model work (expected misses) in the next ``count`` passages."""
        if self.uncached is None:
            return count
        return int(self.uncached[self.done : self.done + count].sum())


class MicroBatcher:
    """One model thread serving many job threads; see the module docstring for the policy."""

    def __init__(
        self,
        reranker: Reranker,
        max_wait_seconds: float = 0.005,
        max_pairs_per_round: int = DEFAULT_MAX_PAIRS_PER_ROUND,
        hard_time_limit_seconds: float | None = None,
        on_stuck: Callable[[float], None] | None = None,
        meter: ThroughputMeter | None = None,
    ) -> None:
        self.reranker = reranker
        self.max_wait_seconds = max_wait_seconds
        self.max_pairs_per_round = max_pairs_per_round
        self.stats = BatcherStats()
        self.meter = meter or ThroughputMeter()
        self._pending: deque[_Pending] = deque()
        self._background: deque[_Pending] = deque()
        self._active: list[_Pending] = []
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

    def submit(
        self,
        query: str,
        passages: Sequence[str],
        announced: bool = False,
        deadline: JobDeadline | None = None,
        passage_tokens: int | None = None,
    ) -> Future[BatchedScore]:
        future: Future[BatchedScore] = Future()
        uncached = None
        if deadline is not None and deadline.min_partial is not None:  # planned in steps: know its real work
            try:
                uncached = self.reranker.uncached(query, passages, passage_tokens)
            except Exception as exc:  # a planning aid only: without it every pair counts as work
                log.debug("cache lookup for step planning failed: %s", exc)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the model thread has stopped")
            if announced:
                self._incoming -= 1
            expires, min_partial = (deadline.expires, deadline.min_partial) if deadline else (None, None)
            self._pending.append(
                _Pending(
                    query,
                    passages,
                    future,
                    time.monotonic(),
                    expires,
                    min_partial,
                    uncached=uncached,
                    passage_tokens=passage_tokens,
                )
            )
            self._cond.notify_all()
        return future

    def submit_background(self, query: str, passages: Sequence[str]) -> Future[BatchedScore]:
        """Low-priority work (cache warming): scored only in steps when no live job is active or waiting."""
        future: Future[BatchedScore] = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the model thread has stopped")
            self._background.append(_Pending(query, passages, future, time.monotonic(), background=True))
            self._cond.notify_all()
        return future

    def score(
        self,
        query: str,
        passages: Sequence[str],
        timeout: float | None = None,
        deadline: JobDeadline | None = None,
        passage_tokens: int | None = None,
    ) -> BatchedScore:
        return _wait(self.submit(query, passages, deadline=deadline, passage_tokens=passage_tokens), timeout)

    @property
    def pending_jobs(self) -> int:
        """Jobs handed over and waiting for their first step."""
        with self._cond:
            return len(self._pending)

    @property
    def idle(self) -> bool:
        """No live job active, handed over or announced (background work may still be running)."""
        with self._cond:
            return not self._pending and not self._incoming and not any(not j.background for j in self._active)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # -- model thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            step = self._next_step()
            if step is None:
                return
            self._score_step(step)

    def _next_step(self) -> list[tuple[_Pending, int]] | None:
        """The jobs of the next step and how many passages each contributes; None once stopped."""
        while True:
            with self._cond:
                live = [job for job in self._active if not job.background]
                while not self._pending and not self._active and not self._background and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._pending and not live:
                    return None
                if not live and self._pending:
                    self._linger()
                self._admit(live)
                if not live and not self._active and self._background:
                    self._active.append(self._background.popleft())
            live = self._drop_expired(live)
            if live:
                return self._plan(live)
            background = [job for job in self._active if job.background]
            if background:
                job = background[0]
                return [(job, min(job.remaining, self.meter.step_pairs(ceiling=BACKGROUND_STEP_PAIRS)))]

    def _linger(self) -> None:
        """Wait a few milliseconds while announced jobs are on their way, so they share the first step."""
        deadline = time.monotonic() + self.max_wait_seconds
        while self._incoming > 0 and self._pending_pairs() < self.max_pairs_per_round:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)

    def _admit(self, live: list[_Pending]) -> None:
        """Move handed-over jobs into the active set while the live work stays under the round cap.

        Work is model work: a job's cached passages cost no forward pass, so they take no room. Counting them
        kept mostly cached jobs waiting in line behind the cap while the pool had time for them, which the
        web tier's depth policy (it plans every job in flight side by side) does not expect.
        """
        room = self.max_pairs_per_round - sum(job.work(job.remaining) for job in live)
        while self._pending and (not live or self._pending[0].work(self._pending[0].remaining) <= room):
            item = self._pending.popleft()
            if item.future.set_running_or_notify_cancel():  # False: its caller gave up while it queued
                live.append(item)
                self._active.append(item)
                room -= item.work(item.remaining)

    def _pending_pairs(self) -> int:
        return sum(item.work(item.remaining) for item in self._pending)

    def _drop_expired(self, live: list[_Pending]) -> list[_Pending]:
        now = time.monotonic()
        kept = []
        for job in live:
            if job.expires is not None and now >= job.expires:
                self._stop_job(job, "the job's deadline passed before it was scored")
            else:
                kept.append(job)
        return kept

    def _plan(self, live: list[_Pending]) -> list[tuple[_Pending, int]]:
        """Each live job's share of the next step; jobs the step would carry past their deadline stop now."""
        if not any(job.expires is not None for job in live):
            return [(job, job.remaining) for job in live]  # nothing to stop for: one step, as large as it gets
        budget = self.meter.step_pairs(ceiling=self.max_pairs_per_round)
        rate = self.meter.pairs_per_second
        share = max(1, budget // len(live))  # model work (cache misses) per job in this step
        step = [(job, job.take(share)) for job in live]
        if rate:
            finish = time.monotonic() + sum(job.work(n) for job, n in step) / rate
            late = [job for job, _ in step if job.expires is not None and finish > job.expires]
            if late and self.meter.idle_seconds() >= EXPLORE_AFTER_SECONDS:
                # the estimate is stale (nothing measured for a while): a small step measures the model again
                # instead of refusing every job on an old, low number forever (issue 22)
                return [(job, job.take(MIN_STEP_PAIRS)) for job in live]
            for job in late:
                self._stop_job(job, "the next step would end after the job's deadline")
            step = [(job, n) for job, n in step if job not in late]
        return step

    def _score_step(self, step: list[tuple[_Pending, int]]) -> None:
        if not step:
            return
        started = time.monotonic()
        self._round_started = started
        try:
            results = self.reranker.score_requests(
                [(job.query, job.passages[job.done : job.done + n]) for job, n in step],
                [job.passage_tokens for job, _ in step],
            )
        except BaseException as exc:  # every job of the step must hear about the failure
            for job, _ in step:
                self._remove(job)
                job.future.set_exception(exc)
            return
        finally:
            self._round_started = None
        ended = time.monotonic()
        elapsed = ended - started
        pairs = sum(n for _, n in step)
        misses = sum(r.cache_misses for r in results)
        self.meter.observe(misses, elapsed)
        live_jobs = sum(not job.background for job, _ in step)
        self.stats.record(len(step), pairs)
        for (job, n), scored in zip(step, results, strict=True):
            if job.first_step is None:
                job.first_step = started
            job.parts.append(scored.raw_scores)
            job.done += n
            job.hits += scored.cache_hits
            job.misses += scored.cache_misses
            job.merged = max(job.merged, live_jobs if not job.background else 1)
            job.step_pairs = max(job.step_pairs, pairs)
            if job.background:
                self.stats.add(background_pairs=n)
            if job.expires is not None and ended > job.expires:
                self.stats.add(late_pairs=n, late_seconds=elapsed * n / pairs)
            if job.remaining == 0:
                self._remove(job)
                job.future.set_result(self._answer(job, complete=True))
            elif job.expires is not None and ended >= job.expires:
                self._stop_job(job, "the job's deadline passed while it was scored")

    def _stop_job(self, job: _Pending, why: str) -> None:
        """End a job early: its head when the caller takes partial answers and it has enough, else a timeout."""
        self._remove(job)
        self.stats.add(skipped_pairs=job.remaining)
        if job.done == 0:
            self.stats.add(expired_jobs=1)
        if job.done and job.min_partial is not None and job.done >= job.min_partial:
            self.stats.add(partial_jobs=1)
            job.future.set_result(self._answer(job, complete=False))
            return
        if job.done:
            self.stats.add(stopped_jobs=1)
        job.future.set_exception(RerankTimeout(f"{why} ({job.done} of {len(job.passages)} passages scored)"))

    def _remove(self, job: _Pending) -> None:
        with self._cond:
            if job in self._active:
                self._active.remove(job)

    def _answer(self, job: _Pending, complete: bool) -> BatchedScore:
        raw = np.concatenate(job.parts) if job.parts else np.empty(0, dtype=np.float32)
        first = job.first_step if job.first_step is not None else time.monotonic()
        return BatchedScore(
            ScoredRequest(raw, cache_hits=job.hits, cache_misses=job.misses),
            job.merged,
            job.step_pairs,
            first - job.handed_over,
            time.monotonic() - first,
            complete,
        )

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

    def score(
        self,
        query: str,
        passages: Sequence[str],
        timeout: float | None,
        deadline: JobDeadline | None = None,
        passage_tokens: int | None = None,
    ) -> BatchedScore:
        """Scores for one job (a head of it when the deadline stops it and allows a partial answer).

        ``RerankTimeout`` when ``timeout`` passes first or the deadline leaves nothing usable.
        """
        if self.handed_over:
            raise RuntimeError("a slot scores one job")
        future = self._batcher.submit(
            query, passages, announced=True, deadline=deadline, passage_tokens=passage_tokens
        )
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
    prefork children, which only ever hold one job. Deadlines work as in ``MicroBatcher``
    (head-first steps, stopping before a step that would end too late).
    """

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker
        self.stats = BatcherStats()
        self.meter = ThroughputMeter()

    @contextmanager
    def incoming(self) -> Iterator[_UnbatchedSlot]:
        yield _UnbatchedSlot(self)

    def score(
        self,
        query: str,
        passages: Sequence[str],
        timeout: float | None = None,
        deadline: JobDeadline | None = None,
        passage_tokens: int | None = None,
    ) -> BatchedScore:
        expires, min_partial = (deadline.expires, deadline.min_partial) if deadline else (None, None)
        if expires is not None and time.monotonic() >= expires:
            self.stats.add(expired_jobs=1, skipped_pairs=len(passages))
            raise RerankTimeout("the job's deadline passed before it was scored")
        prefix = score_prefix(
            self.reranker,
            query,
            passages,
            meter=self.meter,
            expires=expires,
            adaptive=min_partial is not None,
            passage_tokens=passage_tokens,
        )
        done = len(prefix.scored.raw_scores)
        self.stats.record(1, done)
        if not prefix.complete:
            self.stats.add(skipped_pairs=len(passages) - done)
            if done == 0 or done < (min_partial or 0):
                self.stats.add(expired_jobs=int(done == 0), stopped_jobs=int(done > 0))
                raise RerankTimeout(f"the deadline stopped the job after {done} of {len(passages)} passages")
            self.stats.add(partial_jobs=1)
        return BatchedScore(prefix.scored, 1, done, 0.0, prefix.seconds, prefix.complete)

    def stop(self) -> None:
        return None


class _UnbatchedSlot:
    def __init__(self, scorer: UnbatchedScorer) -> None:
        self._scorer = scorer

    def score(
        self,
        query: str,
        passages: Sequence[str],
        timeout: float | None,
        deadline: JobDeadline | None = None,
        passage_tokens: int | None = None,
    ) -> BatchedScore:
        return self._scorer.score(query, passages, timeout, deadline, passage_tokens)
