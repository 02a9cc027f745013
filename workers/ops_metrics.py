"""The ops families of ``/metrics``: queue depth and live rerank workers, read from Redis when a scrape asks.

Bounded by a short timeout, so a dead Redis makes ``/metrics`` report ``shoprank_ops_up 0`` instead of
hanging. Lives with the workers (it reads their queues and registry); ``shoprank.observability.metrics``
renders it as an extra collector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shoprank.config import Settings
from workers.backlog import Backlog
from workers.ops import QUEUES, queue_depths, redis_client, summarize_workers
from workers.registry import WorkerRegistry
from workers.scaling_signal import work_waiting

log = logging.getLogger(__name__)

#: Seconds the scrape-time Redis reads may take before the ops families are reported as down.
OPS_SCRAPE_TIMEOUT_SECONDS = 0.5


class OpsCollector(Collector):
    """Queue depth per queue and live rerank workers per device, read from Redis when a scrape asks.

    Only built when a broker/Redis is configured; a failed read yields ``shoprank_ops_up 0`` and no samples.
    """

    def __init__(self, settings: Settings, timeout: float = OPS_SCRAPE_TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.timeout = timeout

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("shoprank_ops_up", "1 when queue depth and the worker registry could be read.")
        try:
            broker = self.settings.resolved_broker_url or ""
            depths = queue_depths(self.settings, client=redis_client(broker, timeout=self.timeout))
            registry = WorkerRegistry.from_url(
                self.settings.redis_url or broker, self.settings.queue_prefix, socket_timeout=self.timeout
            )
            entries = registry.live()
            workers = summarize_workers(entries)
            backlog = Backlog.from_url(
                self.settings.redis_url or broker, self.settings.queue_prefix, socket_timeout=self.timeout
            )
            waiting = work_waiting({queue: backlog.pairs(queue) for queue in QUEUES}, entries)
        except Exception as exc:  # Redis down or slow: report it, never fail or stall the scrape
            log.debug("ops metrics unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("shoprank_queue_depth", "Rerank jobs waiting in a queue.", labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], depths.get(queue, 0))
        yield depth
        nodes = GaugeMetricFamily(
            "shoprank_live_workers", "Rerank worker nodes with a fresh heartbeat, by device.", labels=["device"]
        )
        processes = GaugeMetricFamily(
            "shoprank_live_worker_processes", "Model processes with a fresh heartbeat, by device.", labels=["device"]
        )
        for device, count in sorted(workers["workers_per_device"].items()):
            nodes.add_metric([device], count)
            processes.add_metric([device], workers["processes_per_device"].get(device, 0))
        yield nodes
        yield processes
        rate = GaugeMetricFamily(
            "shoprank_worker_pairs_per_second",
            "Pairs/s each live model process measured on its own work (what the depth policy plans with).",
            labels=["node", "pid"],
        )
        for entry in entries:
            value = entry.get("pairs_per_second")
            if isinstance(value, int | float):
                rate.add_metric([str(entry.get("node")), str(entry.get("pid"))], float(value))
        yield rate
        # The autoscaler's signal (workers.scaling_signal): uncached pairs in flight ÷ the pool's measured pairs/s.
        pairs = GaugeMetricFamily(
            "shoprank_backlog_pairs", "Uncached pairs of the rerank jobs sent and not finished.", labels=["queue"]
        )
        pool = GaugeMetricFamily(
            "shoprank_pool_pairs_per_second",
            "Pairs/s the queue's live workers measured, summed (what the depth policy plans with).",
            labels=["queue"],
        )
        seconds = GaugeMetricFamily(
            "shoprank_work_waiting_seconds",
            "Backlog pairs / pool pairs/s: seconds of model work waiting (absent while no worker measured a rate).",
            labels=["queue"],
        )
        for queue, signal in waiting.items():
            pairs.add_metric([queue], signal.pairs)
            pool.add_metric([queue], signal.pairs_per_second)
            if signal.seconds is not None:
                seconds.add_metric([queue], signal.seconds)
        yield pairs
        yield pool
        yield seconds


def ops_collector_for(settings: Settings) -> OpsCollector | None:
    return OpsCollector(settings) if settings.resolved_broker_url and settings.redis_url else None
