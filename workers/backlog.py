"""Work queued ahead of a new rerank job, per queue: what the web tier's depth policy waits behind.

A sorted set per queue holds one member per job sent and not yet finished
(``<task id>:<pairs>``, the pairs being the job's uncached ones: the model work it brings),
scored by the job's deadline. The web tier adds a member when
it sends a job; the worker that finishes (or drops) it removes it. A job lost on the
way (worker killed, message expired) needs no cleanup: readers prune members whose
deadline has passed, since nobody waits for those any more.
"""

from __future__ import annotations

import time
from typing import Any


class Backlog:
    def __init__(self, client: Any, prefix: str = "") -> None:
        self._redis = client
        self._prefix = f"{prefix}shoprank:backlog:"

    @classmethod
    def from_url(cls, url: str, prefix: str = "", socket_timeout: float = 1.0) -> Backlog:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        return cls(client, prefix)

    def add(self, queue: str, job_id: str, pairs: int, deadline_at: float) -> None:
        self._redis.zadd(self._prefix + queue, {f"{job_id}:{pairs}": deadline_at})

    def remove(self, queue: str, job_id: str) -> None:
        """Forget the job (whatever pair count its sender registered: the worker does not know it)."""
        key = self._prefix + queue
        members = list(self._redis.zscan_iter(key, match=f"{job_id}:*", count=100))
        if members:
            self._redis.zrem(key, *(member for member, _ in members))

    def pairs(self, queue: str, now: float | None = None) -> int:
        """Pairs of the jobs on ``queue`` whose callers still wait (one round trip)."""
        return sum(self.jobs(queue, now))

    def jobs(self, queue: str, now: float | None = None) -> list[int]:
        """Pairs per job on ``queue`` whose caller still waits (one round trip)."""
        key = self._prefix + queue
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now if now is not None else time.time())
        pipe.zrange(key, 0, -1)
        _, members = pipe.execute()
        sizes = []
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            try:
                sizes.append(int(text.rsplit(":", 1)[1]))
            except (IndexError, ValueError):
                continue
        return sizes
