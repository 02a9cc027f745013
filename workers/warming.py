"""Warming the pair-score cache in a worker's idle time, from a low-priority list in Redis.

Warm requests (``{query, passages, expires_at}``) wait in a Redis list per rerank queue,
apart from the Celery queues, so they can never take a live job's place in a worker.
``WarmFeeder`` is a thread in each batching worker: while the model thread has no live
job it takes one request and hands it to the batcher as background work, which is
scored in small steps that yield to any live job arriving meanwhile.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from workers.microbatch import MicroBatcher

log = logging.getLogger(__name__)

#: A warm request older than this is dropped: the catalog or the head may have moved on.
WARM_REQUEST_TTL_SECONDS = 600.0
#: Requests kept per queue; older ones beyond this are trimmed (the budget's last line of defence).
MAX_WARM_REQUESTS = 1000


class WarmQueue:
    def __init__(self, client: Any, prefix: str = "") -> None:
        self._redis = client
        self._prefix = f"{prefix}shoprank:warm:"

    @classmethod
    def from_url(cls, url: str, prefix: str = "", socket_timeout: float = 3.0) -> WarmQueue:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=1.0)
        return cls(client, prefix)

    def push(self, queue: str, requests: Sequence[tuple[str, Sequence[str]]]) -> int:
        if not requests:
            return 0
        expires_at = time.time() + WARM_REQUEST_TTL_SECONDS
        key = self._prefix + queue
        pipe = self._redis.pipeline(transaction=False)
        for query, passages in requests:
            pipe.rpush(key, json.dumps({"query": query, "passages": list(passages), "expires_at": expires_at}))
        pipe.ltrim(key, -MAX_WARM_REQUESTS, -1)
        pipe.execute()
        return len(requests)

    def pop(self, queue: str, timeout: float = 1.0) -> tuple[str, list[str]] | None:
        item = self._redis.blpop([self._prefix + queue], timeout=timeout)
        if item is None:
            return None
        try:
            request = json.loads(item[1])
            query, passages = request["query"], request["passages"]
            if float(request.get("expires_at", 0)) < time.time():
                return None
            if not isinstance(query, str) or not all(isinstance(p, str) for p in passages):
                return None
        except (ValueError, KeyError, TypeError):
            log.warning("dropping a malformed warm request")
            return None
        return query, list(passages)

    def length(self, queue: str) -> int:
        return int(self._redis.llen(self._prefix + queue))


class WarmFeeder:
    """Feeds warm requests to ``batcher`` one at a time, only while it has no live work."""

    def __init__(self, batcher: MicroBatcher, warm_queue: WarmQueue, queue: str, max_passages: int) -> None:
        self.batcher = batcher
        self.warm_queue = warm_queue
        self.queue = queue
        self.max_passages = max_passages
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerank-warm", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        failing = False
        while not self._stopped.is_set():
            if not self.batcher.idle:
                self._stopped.wait(0.05)
                continue
            try:
                request = self.warm_queue.pop(self.queue, timeout=1.0)
            except Exception as exc:  # Redis away: warming is optional, try again later
                if not failing:
                    log.warning("cannot read warm requests: %s", exc)
                failing = True
                self._stopped.wait(5.0)
                continue
            failing = False
            if request is None:
                continue
            query, passages = request
            try:
                self.batcher.submit_background(query, passages[: self.max_passages]).result()
            except Exception as exc:  # a failed warm request must not stop warming
                log.warning("warm request failed: %s", exc)
