"""What ops and autoscalers read: queue depth per queue, live workers per device.

Plain Redis reads, no Celery broadcast: ``/metrics`` may call these every few seconds
and must not wait for every worker to answer an ``inspect``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shoprank.config import Settings
from workers.celery_app import QUEUE_CPU, QUEUE_GPU
from workers.registry import WorkerRegistry

QUEUES = (QUEUE_GPU, QUEUE_CPU)
#: Kombu's Redis transport keeps one list per priority step: ``queue`` (0) and ``queue\x06\x16N``.
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def redis_client(url: str, timeout: float = 1.0) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def queue_depths(settings: Settings, client: Any = None) -> dict[str, int]:
    """Jobs waiting (not yet taken by a worker) per queue: LLEN over kombu's priority lists."""
    broker = settings.resolved_broker_url
    if not broker or not broker.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"queue depth is read from a Redis broker; got {broker!r}")
    client = client or redis_client(broker)
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for step in KOMBU_PRIORITY_STEPS:
            suffix = f"{KOMBU_PRIORITY_SEPARATOR}{step}" if step else ""
            pipe.llen(f"{settings.queue_prefix}{queue}{suffix}")
    lengths = pipe.execute()
    per_queue = len(KOMBU_PRIORITY_STEPS)
    return {queue: int(sum(lengths[i * per_queue : (i + 1) * per_queue])) for i, queue in enumerate(QUEUES)}


def live_worker_entries(settings: Settings, registry: WorkerRegistry | None = None) -> list[dict[str, Any]]:
    """One advertisement per live model process (a prefork node has several)."""
    if registry is None:
        if not settings.redis_url:
            raise ValueError("the worker registry lives in SHOPRANK_REDIS_URL, which is not set")
        registry = WorkerRegistry.from_url(settings.redis_url, settings.queue_prefix)
    return registry.live()


def summarize_workers(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Live workers per device family (nodes and model processes) with what each serves."""
    nodes: dict[str, dict[str, Any]] = {}
    for entry in entries:
        node = nodes.get(entry["node"])
        if node is None:
            node = nodes[entry["node"]] = {
                key: entry.get(key)
                for key in (
                    "node",
                    "host",
                    "device",
                    "device_family",
                    "queue",
                    "model",
                    "model_id",
                    "kind",
                    "dtype",
                    "max_length",
                    "pool",
                    "jobs_in_flight",
                    "batching",
                )
            }
            node.update(processes=0, jobs_served=0)
        node["processes"] += 1
        node["jobs_served"] += int(entry.get("jobs_served") or 0)
    per_device: dict[str, int] = {"cuda": 0, "cpu": 0}
    processes_per_device: dict[str, int] = {"cuda": 0, "cpu": 0}
    for node in nodes.values():
        family = node["device_family"]
        per_device[family] = per_device.get(family, 0) + 1
        processes_per_device[family] = processes_per_device.get(family, 0) + node["processes"]
    return {
        "workers_per_device": per_device,
        "processes_per_device": processes_per_device,
        "workers": sorted(nodes.values(), key=lambda n: n["node"]),
    }


def live_workers(settings: Settings) -> dict[str, Any]:
    """``{workers_per_device: {cuda: n, cpu: m}, processes_per_device: ..., workers: [...]}``."""
    return summarize_workers(live_worker_entries(settings))


def ops_snapshot(settings: Settings) -> dict[str, Any]:
    """Queue depths and live workers in one object (ops page, ``shoprank worker-status``)."""
    return {"queues": queue_depths(settings), **live_workers(settings)}
