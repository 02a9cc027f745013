"""How many candidates to rerank under a deadline, and scoring that stops when the deadline says so.

Reranking on a CPU is not all-or-nothing: the first-stage head (say the top 20) is
where the cross-encoder changes what shoppers see, so when the pool cannot score 100
pairs in time it should score fewer, not none. Three pieces, shared by the in-process
dispatcher, the Celery client and the workers:

* ``ThroughputMeter``: pairs/s a scorer actually delivers, measured on its own work;
* ``choose_depth``: the depth that finishes inside the deadline given that throughput
  and the work already queued ahead (or ``shed`` when even the minimum cannot);
* ``score_prefix``: scores a job head-first in steps, stopping between steps when the
  next one would land after the deadline (the prefix scored so far is the partial answer).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reranking.reranker import Reranker, ScoredRequest

#: Seconds of model work one step should take: the granularity at which a job can stop or a newer job can join.
STEP_SECONDS = 0.15
MIN_STEP_PAIRS = 8
#: Steps for a scorer whose throughput is not measured yet (the first step measures it).
UNMEASURED_STEP_PAIRS = 32


#: Seconds for a stale low estimate to move about 63 % of the way back to the reference (calibration): after a
#: minute without any measurement (the web tier shed every job on the low estimate) it is within 2 % of it.
RECOVERY_SECONDS = 15.0
#: A pool that got no job for this long gets the next one at the minimum depth although its estimate says
#: shed: that job measures the pool again (the estimate may be stale, not the pool slow).
EXPLORE_AFTER_SECONDS = 10.0


class ThroughputMeter:
    """Pairs per second of model work, an exponentially weighted mean over recent steps.

    Measured by the process that scores (so a slow or shared machine shows up as
    such) and only on steps that computed enough pairs for the timing to mean something.

    An estimate below the reference (the best of the calibration and the rates seen) decays back toward it while no
    measurement arrives (``RECOVERY_SECONDS``): a worker that measured a low rate on a busy machine would
    otherwise keep it forever, because the web tier sheds every job on that estimate and no new measurement
    ever comes (issue 22). Measurements that keep arriving win: the decay only fills the silence.
    """

    def __init__(
        self,
        alpha: float = 0.3,
        min_pairs: int = 4,
        *,
        recovery_seconds: float = RECOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alpha = alpha
        self.min_pairs = min_pairs
        self.recovery_seconds = recovery_seconds
        self._clock = clock
        self._value: float | None = None
        self._reference: float | None = None
        self._observed_at = clock()
        self._lock = threading.Lock()

    def calibrated(self, rate: float) -> None:
        """The rate measured on calibration pairs at start-up: the value a stale estimate recovers toward."""
        if rate > 0:
            with self._lock:
                self._reference = max(self._reference or 0.0, rate)
                self._observed_at = self._clock()
                self._value = rate if self._value is None else self._value

    def observe(self, pairs: int, seconds: float) -> None:
        if pairs < self.min_pairs or seconds <= 0:
            return
        rate = pairs / seconds
        with self._lock:
            current = self._current()
            self._value = rate if current is None else (1 - self.alpha) * current + self.alpha * rate
            self._reference = max(self._reference or 0.0, rate)
            self._observed_at = self._clock()

    def _current(self) -> float | None:
        value, reference = self._value, self._reference
        if value is None or reference is None or value >= reference or self.recovery_seconds <= 0:
            return value
        idle = max(0.0, self._clock() - self._observed_at)
        return reference - (reference - value) * math.exp(-idle / self.recovery_seconds)

    @property
    def pairs_per_second(self) -> float | None:
        with self._lock:
            return self._current()

    def idle_seconds(self) -> float:
        """Seconds since the last measurement (or calibration): how stale the estimate is."""
        with self._lock:
            return max(0.0, self._clock() - self._observed_at)

    def step_pairs(self, step_seconds: float = STEP_SECONDS, ceiling: int = 1024) -> int:
        """Pairs per step so that one step takes about ``step_seconds``."""
        rate = self.pairs_per_second
        if rate is None:
            return min(UNMEASURED_STEP_PAIRS, ceiling)
        return max(MIN_STEP_PAIRS, min(ceiling, int(rate * step_seconds)))


@dataclass(frozen=True, slots=True)
class DepthPolicy:
    """The knobs of deadline-aware depth (``SHOPRANK_RERANK_MIN_DEPTH`` etc., see docs/operations/scaling.md)."""

    #: Fewer scored candidates than this is not worth a rerank: shed instead.
    min_depth: int = 10
    #: Fraction of the time left that the planned scoring may fill (the rest absorbs estimate errors).
    safety: float = 0.7
    #: Fixed cost of a job besides scoring: enqueue, pick-up, result delivery, polling.
    overhead_seconds: float = 0.15


@dataclass(frozen=True, slots=True)
class DepthDecision:
    depth: int  # 0 = shed
    shed: bool
    pairs_per_second: float | None
    backlog_pairs: int
    wait_seconds: float  # expected wait behind the backlog
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "shed": self.shed,
            "pairs_per_second": None if self.pairs_per_second is None else round(self.pairs_per_second, 1),
            "backlog_pairs": self.backlog_pairs,
            "wait_ms": round(self.wait_seconds * 1000, 1),
            "reason": self.reason,
        }


def choose_depth(
    policy: DepthPolicy,
    *,
    candidates: int,
    seconds_left: float,
    pairs_per_second: float | None,
    backlog_pairs: int = 0,
    min_depth: int | None = None,
    shared_with: Sequence[int] | None = None,
    uncached: Sequence[bool] | None = None,
    explore: bool = False,
) -> DepthDecision:
    """The largest head (≤ ``candidates``) whose scores can be back within ``seconds_left``.

    ``pairs_per_second`` is the pool's measured throughput (None: not measured yet, so
    the full depth is tried and the first jobs measure it). Work ahead is either
    ``backlog_pairs`` scored first-come first-served (the in-process thread), or
    ``shared_with``: the sizes of the jobs in flight on a pool that scores them side by
    side in steps (the workers), where a job of depth d waits only for ``min(size, d)``
    of each other job, so a busy pool hands every search a small head instead of full
    depth to the first and nothing to the rest. ``min_depth`` (the job's) overrides the
    policy's floor. ``explore`` (the pool got no job for ``EXPLORE_AFTER_SECONDS``): send the floor instead of
    shedding, so a pool whose estimate is too low still gets jobs that measure it again.
    """
    floor = max(1, min(policy.min_depth if min_depth is None else min_depth, candidates))
    if shared_with is not None:
        backlog_pairs = sum(shared_with)
    if pairs_per_second is None or pairs_per_second <= 0:
        return DepthDecision(candidates, False, None, backlog_pairs, 0.0, "throughput not measured yet")
    fits = (seconds_left - policy.overhead_seconds) * policy.safety * pairs_per_second  # pairs, work ahead included

    def ahead(depth: int) -> int:
        if shared_with is None:
            return backlog_pairs
        return sum(min(size, depth) for size in shared_with)

    misses = np.concatenate([[0], np.cumsum(np.asarray(uncached, dtype=np.int64))]) if uncached is not None else None

    def work(depth: int) -> int:
        return depth if misses is None else int(misses[min(depth, len(misses) - 1)])

    low, high = 0, candidates  # the largest depth with ahead(depth) + work(depth) <= fits (monotone in depth)
    while low < high:
        middle = (low + high + 1) // 2
        if ahead(middle) + work(middle) <= fits:
            low = middle
        else:
            high = middle - 1
    wait = ahead(max(low, floor)) / pairs_per_second
    if low < floor and explore:  # the estimate may be stale: this search re-measures it at the minimum depth
        return DepthDecision(floor, False, pairs_per_second, backlog_pairs, wait, f"exploring: {low} pairs fit")
    if low < floor:
        return DepthDecision(0, True, pairs_per_second, backlog_pairs, wait, f"{low} pairs fit, fewer than {floor}")
    reason = "full depth fits" if low == candidates else f"{low} pairs fit"
    return DepthDecision(low, False, pairs_per_second, backlog_pairs, wait, reason)


@dataclass(frozen=True, slots=True)
class PrefixScore:
    """Raw scores of the first ``len(scored.raw_scores)`` passages; ``complete`` when that is all of them."""

    scored: ScoredRequest
    complete: bool
    steps: int
    seconds: float


def score_prefix(
    reranker: Reranker,
    query: str,
    passages: Sequence[str],
    *,
    meter: ThroughputMeter,
    expires: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    adaptive: bool = True,
    passage_tokens: int | None = None,
) -> PrefixScore:
    """Score ``passages`` head-first in steps; stop between steps when asked or when the next would miss ``expires``.

    ``expires`` is a ``time.monotonic()`` instant. A non-adaptive job (all or nothing,
    such as the rerank API) runs as one step: stopping it half-way would waste the work.
    Every step goes through the reranker, so what was scored is cached even when the
    job stops early.
    """
    started = time.monotonic()
    raw: list[np.ndarray] = []
    hits = misses = steps = done = 0
    while done < len(passages):
        if stop():
            break
        size = meter.step_pairs() if adaptive else len(passages)
        chunk = passages[done : done + size]
        rate = meter.pairs_per_second
        if expires is not None and adaptive and rate and time.monotonic() + len(chunk) / rate > expires:
            break
        mark = time.monotonic()
        scored = reranker.score(query, chunk, passage_tokens) if passage_tokens else reranker.score(query, chunk)
        meter.observe(scored.cache_misses, time.monotonic() - mark)
        raw.append(scored.raw_scores)
        hits += scored.cache_hits
        misses += scored.cache_misses
        done += len(chunk)
        steps += 1
    values = np.concatenate(raw) if raw else np.empty(0, dtype=np.float32)
    return PrefixScore(
        ScoredRequest(values, cache_hits=hits, cache_misses=misses),
        complete=done >= len(passages),
        steps=steps,
        seconds=time.monotonic() - started,
    )


def longest_cached_prefix(values: Sequence[float | None]) -> int:
    """How many leading entries of a cache lookup are hits."""
    for i, value in enumerate(values):
        if value is None:
            return i
    return len(values)
