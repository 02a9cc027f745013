"""Which rerank workers are alive, and what each one serves: a heartbeat registry in Redis.

Every model process writes a small JSON advertisement (device, model, dtype,
max_length, counters) under its own key with a TTL, and refreshes it every few
seconds; a process that dies simply stops refreshing and its key expires. Readers
(the web tier's routing, ``/metrics``, the ops page) pay one SMEMBERS and one MGET,
where a Celery ``inspect`` broadcast would wait for every worker to answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between heartbeats; an advertisement lives for three of them.
HEARTBEAT_INTERVAL_SECONDS = 5.0
ENTRY_TTL_SECONDS = 3 * HEARTBEAT_INTERVAL_SECONDS


class WorkerRegistry:
    """Advertisements under ``<prefix>shoprank:worker:<entry>``, indexed by the set ``<prefix>shoprank:workers``."""

    def __init__(self, client: Any, prefix: str = "", ttl_seconds: float = ENTRY_TTL_SECONDS) -> None:
        self._redis = client
        self._index = f"{prefix}shoprank:workers"
        self._entry_prefix = f"{prefix}shoprank:worker:"
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_url(cls, url: str, prefix: str = "", socket_timeout: float = 1.0, **kwargs: Any) -> WorkerRegistry:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        return cls(client, prefix, **kwargs)

    def advertise(self, entry_id: str, info: Mapping[str, Any]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._entry_prefix + entry_id, json.dumps(dict(info), sort_keys=True), px=int(self.ttl_seconds * 1000))
        pipe.sadd(self._index, entry_id)
        pipe.execute()

    def withdraw(self, entry_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._entry_prefix + entry_id)
        pipe.srem(self._index, entry_id)
        pipe.execute()

    def live(self) -> list[dict[str, Any]]:
        """Advertisements whose heartbeat has not expired; expired entries are pruned from the index."""
        entry_ids = sorted(
            member.decode() if isinstance(member, bytes) else member for member in self._redis.smembers(self._index)
        )
        if not entry_ids:
            return []
        values = self._redis.mget([self._entry_prefix + entry for entry in entry_ids])
        alive, dead = [], []
        for entry, raw in zip(entry_ids, values, strict=True):
            if raw is None:
                dead.append(entry)
                continue
            try:
                alive.append(json.loads(raw))
            except ValueError:
                dead.append(entry)
        if dead:
            self._redis.srem(self._index, *dead)
        return alive


class Heartbeat:
    """A daemon thread that keeps one advertisement fresh until ``stop()``; Redis outages are logged once."""

    def __init__(
        self,
        registry: WorkerRegistry,
        entry_id: str,
        describe: Callable[[], Mapping[str, Any]],
        interval_seconds: float = HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        self.registry = registry
        self.entry_id = entry_id
        self._describe = describe
        self._interval = interval_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerank-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self.beat()  # advertise at once: readiness must not wait for the first interval
        self._thread.start()

    def beat(self) -> None:
        try:
            self.registry.advertise(self.entry_id, self._describe())
        except Exception as exc:  # a Redis blip must not kill the worker
            if not self._failing:
                log.warning("worker heartbeat failed (%s); routing will not see this worker until it recovers", exc)
            self._failing = True
        else:
            if self._failing:
                log.info("worker heartbeat recovered")
            self._failing = False

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.beat()

    def stop(self, withdraw: bool = True) -> None:
        self._stopped.set()
        if withdraw:
            try:
                self.registry.withdraw(self.entry_id)
            except Exception as exc:  # the entry expires on its own
                log.debug("could not withdraw %s: %s", self.entry_id, exc)
