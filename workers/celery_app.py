"""The Celery app for rerank jobs, built from ``Settings`` for one of two roles.

Both roles share the contract (task name, queues, JSON only, acks_late); they differ
in how they treat a broker that does not answer. A *worker* keeps retrying: it is a
long-running service and the broker may simply not be up yet. A *client* (the web
tier) must never wait on a dead broker: a search has a deadline of a few hundred
milliseconds and falls back to first-stage order, so every connection attempt is
bounded and never retried.
"""

from __future__ import annotations

from typing import Any, Literal

from celery import Celery
from kombu import Queue

from shoprank.config import ConfigError, Settings

#: The one task: score a (query, passages) job. Named for what it does, not where it lives.
RERANK_TASK_NAME = "shoprank.rerank_job"
#: Jobs for fp16 cross-encoders on GPUs.
QUEUE_GPU = "rerank.gpu"
#: Jobs for INT8 cross-encoders on CPUs; also where everything goes while no GPU worker is alive.
QUEUE_CPU = "rerank.cpu"
QUEUE_FOR_DEVICE = {"cuda": QUEUE_GPU, "cpu": QUEUE_CPU}

Role = Literal["client", "worker"]

#: Connection bounds for callers: a refused or silent broker must fail the call in about a second.
CLIENT_CONNECT_TIMEOUT_SECONDS = 1.0
CLIENT_SOCKET_TIMEOUT_SECONDS = 3.0


def device_family(device: str) -> str:
    """``cuda:1`` and ``cuda`` share a queue; everything else is CPU."""
    return "cuda" if device.startswith("cuda") else "cpu"


def redis_transport_options(settings: Settings, role: Role) -> dict[str, Any]:
    """Kombu's Redis transport options: the key prefix isolates whole deployments (and test runs)."""
    options: dict[str, Any] = {
        # Every broker key (queues, the unacked bookkeeping, control channels) gets the prefix,
        # so two deployments on one Redis never consume or restore each other's messages.
        "global_keyprefix": settings.queue_prefix,
        # A job unacked this long belongs to a dead worker and goes back to its queue.
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
    }
    if role == "client":
        options.update(
            socket_connect_timeout=CLIENT_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=CLIENT_SOCKET_TIMEOUT_SECONDS,
            max_retries=0,  # kombu's ensure_connection: give up after the first failed attempt
        )
    else:
        # Sweep for abandoned jobs often enough that redelivery follows the visibility timeout
        # closely (kombu's defaults sweep about every 100 s).
        sweep = max(1, min(10, int(settings.broker_visibility_timeout_seconds // 3)))
        options.update(unacked_restore_interval=sweep, unacked_restore_throttle=1, socket_connect_timeout=5.0)
    return options


def create_celery_app(settings: Settings, role: Role = "client") -> Celery:
    """A Celery app for ``settings``; ``role`` decides how hard it tries to reach the broker."""
    broker_url = settings.resolved_broker_url
    if not broker_url or not settings.redis_url:
        raise ConfigError(
            "Celery reranking needs SHOPRANK_REDIS_URL (result backend, score cache, worker registry); "
            "SHOPRANK_BROKER_URL defaults to it"
        )
    app = Celery("shoprank", broker=broker_url, backend=settings.redis_url, set_as_current=False)
    transport_options = redis_transport_options(settings, role) if broker_url.startswith("redis") else {}
    hard_limit = settings.rerank_hard_time_limit_seconds
    app.conf.update(
        # JSON only: a pickle payload from anyone who can write to Redis would be code execution.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        # Results are read within a search's deadline; keep them a few minutes for debugging, no longer.
        result_expires=settings.rerank_result_expires_seconds,
        result_backend_transport_options={"global_keyprefix": settings.queue_prefix},
        redis_socket_connect_timeout=CLIENT_CONNECT_TIMEOUT_SECONDS if role == "client" else 5.0,
        redis_socket_timeout=CLIENT_SOCKET_TIMEOUT_SECONDS if role == "client" else 30.0,
        redis_retry_on_timeout=False,
        result_backend_always_retry=False,
        # Fault tolerance: ack only after the job ran, and give the job back if its process died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A redelivered job whose result is already stored is answered from the store, not recomputed.
        worker_deduplicate_successful_tasks=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=settings.rerank_soft_time_limit_seconds,
        task_time_limit=hard_limit,
        task_track_started=False,
        task_ignore_result=False,
        task_queues=[Queue(QUEUE_GPU), Queue(QUEUE_CPU)],
        task_default_queue=QUEUE_CPU,
        task_routes={RERANK_TASK_NAME: {"queue": QUEUE_CPU}},  # the client overrides per job
        task_create_missing_queues=False,
        task_publish_retry=False,  # a dead broker is reported at once, never retried behind a deadline
        broker_transport_options=transport_options,
        broker_connection_timeout=CLIENT_CONNECT_TIMEOUT_SECONDS if role == "client" else 5.0,
        broker_connection_retry=role == "worker",
        broker_connection_retry_on_startup=role == "worker",
        broker_connection_max_retries=None if role == "worker" else 0,
        broker_pool_limit=16,
        # Isolates control broadcasts (ping, inspect) together with the key prefix.
        control_exchange=f"{settings.queue_prefix}shoprank",
        # Workers: one message per free slot (no hoarding), loud but cheap observability.
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        # Loading a real cross-encoder in a prefork child takes far longer than Celery's 4 s default.
        worker_proc_alive_timeout=600.0,
        worker_lost_wait=10.0,
    )
    return app
