"""The web tier's side of Celery reranking: ``CeleryDispatcher`` implements ``RerankDispatcher``.

Routing: a job goes to ``rerank.gpu`` while a GPU worker serving its model is alive,
else to ``rerank.cpu``; a job's ``device_preference`` wins when a worker of that
device is alive. Liveness comes from the worker registry, cached for a few seconds,
so a search costs no broadcast.

A popular query costs no queue round trip: when every (query, passage) pair is
already in the Redis score cache, under the cache namespace the routed workers
advertise, the answer is read here and no job is sent.

How much to rerank: a search job (``min_depth`` set) is cut to the head the pool can
score before the deadline, from the workers' own measured pairs/s (in the registry)
and the pairs already queued ahead (``workers.backlog``); when not even ``min_depth``
fits, it is shed at once (``RerankShed``) instead of queued. A cached head of any
length is served from the cache. Every job carries its absolute deadline.

Failure is always typed and always fast: an invalid job is ``RerankRejected`` before
anything is sent; no live worker, a dead broker or a dead Redis is
``RerankUnavailable`` within about a second (and for the next few seconds without
even trying); no answer by the deadline is ``RerankTimeout``. The job carries the
deadline as its expiry, so a worker never computes an answer nobody waits for.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from celery import Celery
from celery import states as celery_states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import OperationalError

from reranking.cache import RedisScoreCache, budget_namespace, pair_cache_keys
from reranking.depth import EXPLORE_AFTER_SECONDS, DepthDecision, choose_depth, longest_cached_prefix
from reranking.dispatch import (
    DispatchResult,
    RerankError,
    RerankJob,
    RerankRejected,
    RerankShed,
    RerankTimeout,
    RerankUnavailable,
)
from reranking.scorers.base import ScorerInfo, sigmoid
from shoprank.config import Settings
from workers.backlog import Backlog
from workers.celery_app import QUEUE_CPU, QUEUE_FOR_DEVICE, QUEUE_GPU, RERANK_TASK_NAME, create_celery_app
from workers.jobs import result_from_payload, validate_job_payload
from workers.ops import queue_depths, summarize_workers
from workers.registry import WorkerRegistry
from workers.warming import WarmQueue

log = logging.getLogger(__name__)

#: How long a liveness lookup is trusted; a new GPU worker gets traffic within this delay.
LIVENESS_CACHE_SECONDS = 3.0
#: After the broker or Redis failed, fail fast for this long instead of paying a timeout per search.
UNAVAILABLE_BACKOFF_SECONDS = 2.0
#: Jobs expire this long after the caller's deadline (covers clock skew between web and worker hosts).
EXPIRY_GRACE_SECONDS = 1.0


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (OperationalError, redis.exceptions.RedisError, OSError)


def redact_url(url: str | None) -> str | None:
    """``redis://:secret@host`` → ``redis://***@host``, for logs and the ops page."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class CeleryDispatcher:
    def __init__(
        self,
        app: Celery,
        registry: WorkerRegistry,
        settings: Settings,
        liveness_cache_seconds: float = LIVENESS_CACHE_SECONDS,
        unavailable_backoff_seconds: float = UNAVAILABLE_BACKOFF_SECONDS,
        score_cache: RedisScoreCache | None = None,
    ) -> None:
        self.app = app
        self.policy = settings.depth_policy()
        self._last_admitted: dict[str, float] = {}  # per queue: when a job last passed the depth policy
        self.clock: Callable[[], float] = time.monotonic  # for the exploration interval (tests inject one)
        redis_url = settings.redis_url or ""
        self.backlog = Backlog.from_url(redis_url, settings.queue_prefix)
        self.warm_queue = WarmQueue.from_url(redis_url, settings.queue_prefix)
        self.registry = registry
        self.settings = settings
        #: The workers' pair-score cache (same Redis, same key prefix); None disables the short-circuit.
        self.score_cache = score_cache
        self.liveness_cache_seconds = liveness_cache_seconds
        self.unavailable_backoff_seconds = unavailable_backoff_seconds
        self._errors = _connection_errors()
        self._lock = threading.Lock()
        self._live: list[dict[str, Any]] = []
        self._live_checked_at = float("-inf")
        self._down_until = float("-inf")
        self._down_reason = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryDispatcher:
        """The dispatcher the web app uses when ``SHOPRANK_REDIS_URL`` is set."""
        app = create_celery_app(settings, role="client")
        registry = WorkerRegistry.from_url(settings.redis_url or "", settings.queue_prefix)
        score_cache = RedisScoreCache(
            settings.redis_url or "", ttl_seconds=settings.score_cache_ttl_seconds, key_prefix=settings.cache_key_prefix
        )
        return cls(app, registry, settings, score_cache=score_cache)

    # -- RerankDispatcher ---------------------------------------------------------------------------

    def dispatch(self, job: RerankJob, deadline_seconds: float) -> DispatchResult:
        started = time.monotonic()
        payload = job.to_payload()
        if isinstance(payload["passages"], tuple):  # JSON has no tuples; accept them like the in-process path
            payload["passages"] = list(payload["passages"])
        validate_job_payload(payload, self.settings.rerank_max_documents, self.settings.max_query_chars)
        if deadline_seconds <= 0:
            raise RerankTimeout("deadline already passed")
        deadline_at = time.time() + deadline_seconds
        if job.deadline_at is not None:
            deadline_at = min(deadline_at, job.deadline_at)
        self._fail_fast_if_down()
        try:
            queue, routing = self.choose_queue(job)
        except RerankError:
            raise
        except self._errors as exc:
            raise self._went_down(f"cannot read the worker registry: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # e.g. a corrupt registry entry: never fail the search with it
            raise RerankError(f"cannot route the rerank job: {type(exc).__name__}: {exc}") from None
        scorer, cached, uncached = self._cached_head(job, queue)
        if scorer is not None and len(cached) == len(job.passages) and job.passages:
            return self._answer_from_cache(cached, scorer, routing, queue, started)
        decision = None
        if job.min_depth is not None and job.passages:
            decision = self._choose_depth(job, queue, deadline_at - time.time(), uncached)
            depth = max(decision.depth, len(cached))
            if decision.shed and len(cached) < max(1, min(job.min_depth, len(job.passages))):
                raise RerankShed(f"shed on {queue}: {decision.reason} before the deadline")
            if scorer is not None and len(cached) >= depth:  # the head the pool could afford is cached already
                return self._answer_from_cache(cached, scorer, routing, queue, started, decision)
            payload["passages"] = payload["passages"][:depth]
        payload["deadline_at"] = deadline_at
        task_id = str(uuid.uuid4())
        try:
            work = len(payload["passages"]) if uncached is None else sum(uncached[: len(payload["passages"])])
            self.backlog.add(queue, task_id, work, deadline_at + EXPIRY_GRACE_SECONDS)
            result = self.app.send_task(
                RERANK_TASK_NAME,
                kwargs={"job": payload, "enqueued_at": time.time()},
                queue=queue,
                task_id=task_id,
                expires=deadline_seconds + EXPIRY_GRACE_SECONDS,
                retry=False,
                # Celery would otherwise repr() the whole job into the message headers: slow for
                # 100 passages, and shoppers' queries do not belong in monitoring tools.
                argsrepr="()",
                kwargsrepr=f"{{job: {len(payload['passages'])} passages, request_id={job.request_id!r}}}",
            )
        except self._errors as exc:
            raise self._went_down(f"cannot enqueue rerank job: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise RerankError(f"cannot enqueue rerank job: {type(exc).__name__}: {exc}") from None

        remaining = deadline_seconds - (time.monotonic() - started)
        try:
            value = result.get(timeout=max(remaining, 0.001), propagate=False, interval=0.05)
        except CeleryTimeoutError:
            _stop_waiting(result)
            raise RerankTimeout(f"no scores from {queue} within {deadline_seconds * 1000:.0f} ms") from None
        except self._errors as exc:
            _stop_waiting(result)
            raise self._went_down(f"lost the result backend while waiting: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            _stop_waiting(result)
            raise RerankError(f"could not read the worker's answer: {type(exc).__name__}: {exc}") from None

        state: str = result.state  # celery-types' Literal for it lacks REVOKED, which celery does report
        if state == celery_states.SUCCESS:
            try:
                answer = result_from_payload(value)
            except (TypeError, ValueError) as exc:
                raise RerankError(f"malformed answer from the worker: {exc}") from None
            client_seconds = time.monotonic() - started
            extra = {**answer.extra, "routing": routing, "client_seconds": client_seconds}
            if decision is not None:
                extra["depth_decision"] = decision.as_dict()
            return dataclasses.replace(answer, extra=extra)
        if state == celery_states.REVOKED:
            raise RerankTimeout("the job expired before a worker took it")
        raise _as_rerank_error(value, queue)

    def pool_throughput(self, queue: str) -> float | None:
        """Pairs/s the live workers on ``queue`` measured on their own work (None: none has measured yet)."""
        family = next(device for device, name in QUEUE_FOR_DEVICE.items() if name == queue)
        rates = [
            float(entry["pairs_per_second"])
            for entry in self._live
            if entry.get("device_family") == family and isinstance(entry.get("pairs_per_second"), int | float)
        ]
        return sum(rates) if rates else None

    def _choose_depth(
        self, job: RerankJob, queue: str, seconds_left: float, uncached: list[bool] | None = None
    ) -> DepthDecision:
        try:
            in_flight = self.backlog.jobs(queue)
        except self._errors as exc:
            raise self._went_down(f"cannot read the rerank backlog: {type(exc).__name__}: {exc}") from None
        now = self.clock()
        last_admitted = self._last_admitted.setdefault(queue, now)
        decision = choose_depth(
            self.policy,
            candidates=len(job.passages),
            seconds_left=seconds_left,
            pairs_per_second=self.pool_throughput(queue),
            min_depth=job.min_depth,
            shared_with=in_flight,  # workers score jobs in flight side by side, step by step
            uncached=uncached,  # cached pairs cost the pool nothing: only misses are work
            # a pool shed for a while gets one job anyway: it measures again (its estimate may be stale)
            explore=now - last_admitted >= EXPLORE_AFTER_SECONDS,
        )
        if not decision.shed:
            self._last_admitted[queue] = now
        return decision

    def _cached_head(self, job: RerankJob, queue: str) -> tuple[ScorerInfo | None, np.ndarray, list[bool] | None]:
        """Raw scores of the longest head of ``job`` in the workers' cache, keyed as the routed workers key them,
        and which passages are not cached (None when the cache cannot tell: then every pair counts as work)."""
        empty = np.empty(0, dtype=np.float32)
        if self.score_cache is None or not job.passages:
            return None, empty, None
        scorer = _advertised_scorer(self._live, queue, job.model)
        if scorer is None or scorer.kind != "cross-encoder":
            return None, empty, None
        # Workers key budgeted passages apart; the web tier and the workers read the same deployment budget.
        budget = job.passage_tokens if job.passage_tokens is not None else self.settings.rerank_passage_tokens
        namespace = budget_namespace(scorer.cache_namespace, budget)
        values = self.score_cache.get_many(pair_cache_keys(namespace, job.query, job.passages))
        head = longest_cached_prefix(values)
        return scorer, np.asarray(values[:head], dtype=np.float32), [value is None for value in values]

    def _answer_from_cache(
        self,
        raw: np.ndarray,
        scorer: ScorerInfo,
        routing: str,
        queue: str,
        started: float,
        decision: DepthDecision | None = None,
    ) -> DispatchResult:
        """Scores straight from the workers' cache: no job is sent."""
        extra: dict[str, Any] = {"routing": routing, "would_queue": queue}
        if decision is not None:
            extra["depth_decision"] = decision.as_dict()
        return DispatchResult(
            raw_scores=[float(s) for s in raw],
            normalized_scores=[float(s) for s in sigmoid(raw)],
            cache_hits=len(raw),
            cache_misses=0,
            scorer=scorer.as_dict(),
            served_by="score-cache",
            compute_seconds=time.monotonic() - started,
            queue=None,
            extra=extra,
        )

    def warm(self, query: str, passages: list[str], model: str | None = None) -> None:
        """Queue cache warming for idle workers (a Redis list beside the Celery queues; never ahead of live jobs)."""
        job = RerankJob(query, passages, model=model)
        queue, _ = self.choose_queue(job)
        self.warm_queue.push(queue, [(query, passages)])

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mode": "celery",
            "broker": redact_url(self.settings.resolved_broker_url),
            "queue_prefix": self.settings.queue_prefix,
        }
        try:
            entries = self.live_workers(refresh=True)
            workers = summarize_workers(entries)
            described.update(workers)
            scorer = _routed_scorer(entries)
            if scorer is not None:  # what /health shows as the active scorer, as for the in-process path
                described["scorer"] = scorer
            described["queues"] = queue_depths(self.settings)
            described["routes_to"] = QUEUE_GPU if workers["workers_per_device"].get("cuda") else QUEUE_CPU
        except Exception as exc:  # /ready and the ops page report it; they must not fail on it
            # a code, not the driver's message (it names hosts and ports): the details go to the log only
            log.warning("worker registry unreachable: %s: %s", type(exc).__name__, exc)
            described["ok"] = False
            described["error"] = "worker_registry_unreachable"
        return described

    def close(self) -> None:
        self.app.close()

    # -- routing ------------------------------------------------------------------------------------

    def live_workers(self, refresh: bool = False) -> list[dict[str, Any]]:
        """Registry entries, cached for ``liveness_cache_seconds``; raises on Redis errors."""
        with self._lock:
            fresh = time.monotonic() - self._live_checked_at < self.liveness_cache_seconds
            if fresh and not refresh:
                return self._live
        entries = self.registry.live()
        with self._lock:
            self._live, self._live_checked_at = entries, time.monotonic()
        return entries

    def choose_queue(self, job: RerankJob) -> tuple[str, str]:
        """``(queue, why)``; ``RerankUnavailable`` when no live worker serves the job's model."""
        serving = [
            w for w in self.live_workers() if job.model is None or job.model in (w.get("model"), w.get("model_id"))
        ]
        if not serving:
            what = f"serving model {job.model!r} " if job.model else ""
            raise RerankUnavailable(f"no live rerank worker {what}(none has sent a heartbeat recently)")
        alive = {w.get("device_family") for w in serving}
        preferred = job.device_preference
        if preferred is not None and preferred in alive:
            return QUEUE_FOR_DEVICE[preferred], f"preferred {preferred}"
        if "cuda" in alive:
            return QUEUE_GPU, "gpu worker alive" if preferred is None else f"no live {preferred} worker"
        return QUEUE_CPU, "no live gpu worker" if preferred is None else f"no live {preferred} worker"

    # -- fail fast ----------------------------------------------------------------------------------

    def _fail_fast_if_down(self) -> None:
        if time.monotonic() < self._down_until:
            raise RerankUnavailable(f"rerank workers unreachable (recently: {self._down_reason})")

    def _went_down(self, reason: str) -> RerankUnavailable:
        first = time.monotonic() >= self._down_until
        self._down_until = time.monotonic() + self.unavailable_backoff_seconds
        self._down_reason = reason
        if first:
            log.warning(
                "%s; searches keep first-stage order for the next %.0f s", reason, self.unavailable_backoff_seconds
            )
        return RerankUnavailable(f"{reason} (broker {redact_url(self.settings.resolved_broker_url)})")


def _advertised_scorer(entries: list[dict[str, Any]], queue: str, model: str | None) -> ScorerInfo | None:
    """The scorer a job sent to ``queue`` would meet, if every such worker advertises the same one.

    Workers on one queue could differ (say torch INT8 beside ONNX INT8); their cache
    namespaces differ too, so only an unambiguous namespace is used for the lookup.
    """
    family = next(device for device, name in QUEUE_FOR_DEVICE.items() if name == queue)
    infos = {
        _scorer_from_entry(entry)
        for entry in entries
        if entry.get("device_family") == family
        and (model is None or model in (entry.get("model"), entry.get("model_id")))
    }
    return infos.pop() if len(infos) == 1 else None


def _scorer_from_entry(entry: dict[str, Any]) -> ScorerInfo:
    return ScorerInfo(
        model_id=str(entry.get("model_id")),
        revision=str(entry.get("revision")),
        kind=entry.get("kind"),  # type: ignore[arg-type]  # every heartbeat names its scorer's kind
        backend=str(entry.get("backend")),
        device=str(entry.get("device")),
        dtype=str(entry.get("dtype")),
        quantized=entry.get("dtype") == "int8",
        max_length=int(entry.get("max_length") or 0),
    )


def _routed_scorer(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``ScorerInfo.as_dict()`` of a worker that default jobs go to now (GPU first), from its advertisement."""
    ranked = sorted(entries, key=lambda e: (e.get("device_family") != "cuda", str(e.get("node"))))
    return _scorer_from_entry(ranked[0]).as_dict() if ranked else None


def _stop_waiting(result: Any) -> None:
    """Unsubscribe from a result nobody will read (it expires in the backend on its own)."""
    try:
        result.backend.remove_pending_result(result)
    except Exception as exc:  # best effort: a dead backend is already being reported
        log.debug("could not stop waiting for %s: %s", result.id, exc)


def _as_rerank_error(value: Any, queue: str) -> RerankError:
    """The worker's exception (rebuilt by Celery from JSON) as the matching typed error."""
    if isinstance(value, RerankError):
        return value
    by_name = {cls.__name__: cls for cls in (RerankRejected, RerankUnavailable, RerankTimeout, RerankShed, RerankError)}
    name = type(value).__name__
    if name in by_name:
        return by_name[name](str(value))
    if name in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        return RerankTimeout(f"the job exceeded the worker's time limit on {queue}")
    if name == "WorkerLostError":
        return RerankUnavailable(f"the worker on {queue} died while scoring the job")
    return RerankError(f"worker on {queue} failed: {name}: {value}")
