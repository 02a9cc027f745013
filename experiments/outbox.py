"""Exposures the database could not take now, kept in order until it can: nothing a shopper was served is lost.

A search that assigns a unit to a variant must log one exposure; the report and the events API take the unit's
variant from that row. When PostgreSQL is unreachable the search still answers (with the variant it ranked by),
so the exposure goes here instead of being dropped: to a Redis list shared by every web process, or, when Redis
is down too (or not configured), to an append-only JSON-lines file on local disk guarded by ``flock``, or, if
even that fails, to memory. :meth:`ExposureOutbox.replay` writes them back in the order they were put, oldest
in the order they happened (the stores merged by time), with their original ``exposed_at``; ``log_exposure`` keeps the
first row per (experiment, unit), so a replay that runs twice or races another process stores each once.

Replay runs before the events API screens a batch (an impression must find its unit's exposure) and after the
resolver next writes an exposure successfully. Redis is used with short timeouts and a back-off after a failure,
so a dead Redis costs a search at most one quarter-second probe every few seconds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from experiments.store.exposures import log_exposure
from shoprank.db import Database

log = logging.getLogger(__name__)

OUTBOX_FILE = "exposure-outbox.jsonl"
#: How long Redis is left alone after it failed (seconds).
REDIS_RETRY_SECONDS = 5.0
#: Most exposures replayed in one transaction (a long outage replays in several).
REPLAY_CHUNK = 500


class ExposureOutbox:
    """Redis list → local file → memory, replayed into ``exposures`` in order (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        redis_url: str | None = None,
        prefix: str = "",
        *,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(directory) / OUTBOX_FILE
        self._key = f"{prefix}shoprank:exposure-outbox"
        self._lock_key = f"{self._key}:replay-lock"
        self._clock = clock
        self._redis: Any = None
        self._redis_retry_at = 0.0
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._memory: deque[str] = deque()
        self._lock = threading.Lock()
        self.put_count = 0
        self.replayed_count = 0

    # --- put -----------------------------------------------------------------------------------------------------

    def put(
        self,
        *,
        experiment: str,
        unit_id: str,
        variant: str,
        language: str | None,
        market: str | None,
        surface: str | None,
        exposed_at: datetime,
    ) -> str:
        """Keep one exposure for later; returns where it went (``redis``, ``disk`` or ``memory``)."""
        record = json.dumps(
            {
                "experiment": experiment,
                "unit_id": unit_id,
                "variant": variant,
                "language": language,
                "market": market,
                "surface": surface,
                "exposed_at": exposed_at.isoformat(),
            }
        )
        with self._lock:
            self.put_count += 1
        if self._redis_usable():
            try:
                self._redis.rpush(self._key, record)
                return "redis"
            except Exception as exc:
                self._redis_failed(exc)
        try:
            with self._locked_file("a") as handle:
                handle.write(record + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return "disk"
        except OSError:
            log.exception("exposure outbox: cannot write %s; keeping the exposure in memory", self.path)
        with self._lock:
            self._memory.append(record)
        return "memory"

    def pending(self) -> int:
        """How many exposures wait (Redis counted only while it answers)."""
        count = len(self._memory)
        try:
            if self.path.exists():
                with self.path.open("rb") as handle:
                    count += sum(1 for line in handle if line.strip())
        except OSError:
            pass
        if self._redis_usable():
            try:
                count += int(self._redis.llen(self._key))
            except Exception as exc:
                self._redis_failed(exc)
        return count

    # --- replay --------------------------------------------------------------------------------------------------

    def replay(self, db: Database) -> int:
        """Write every kept exposure in the order they happened; returns how many were written (new rows or not).

        The three stores are read together and merged by ``exposed_at`` (a disk entry written while Redis was
        down may be older or newer than Redis ones), so the first exposure of a unit is the one that stays.
        Raises what the database raises: the caller decides (the events API answers 503, the resolver logs).
        Nothing is removed from a store before the transaction that wrote it committed.
        """
        with self._file_for_replay() as handle, self._redis_for_replay() as from_redis:
            from_file = [line for line in handle.read().splitlines() if line.strip()] if handle else []
            with self._lock:
                from_memory = list(self._memory)
            records = sorted(from_file + from_redis + from_memory, key=_exposed_at)
            for start in range(0, len(records), REPLAY_CHUNK):
                _write(db, records[start : start + REPLAY_CHUNK])
            if handle is not None:
                handle.seek(0)
                handle.truncate()
            if from_redis:
                self._redis.ltrim(self._key, len(from_redis), -1)
            with self._lock:
                for _ in from_memory:
                    self._memory.popleft()
        if records:
            with self._lock:
                self.replayed_count += len(records)
            log.info("exposure outbox: replayed %d exposures", len(records))
        return len(records)

    @contextmanager
    def _file_for_replay(self) -> Iterator[Any]:
        """The locked outbox file, or None when there is none (no lock taken then)."""
        try:
            present = self.path.exists() and self.path.stat().st_size > 0
        except OSError:
            present = False
        if not present:
            yield None
            return
        with self._locked_file("r+") as handle:
            yield handle

    @contextmanager
    def _redis_for_replay(self) -> Iterator[list[str]]:
        """What the Redis list holds, under a replay lock ([] when Redis is down, empty, or another replays)."""
        items: list[str] = []
        locked = False
        if self._redis_usable():
            try:
                if self._redis.exists(self._key) and self._redis.set(self._lock_key, "1", nx=True, ex=60):
                    # one replayer at a time: two trimming the same head would drop entries pushed meanwhile
                    locked = True
                    raw = self._redis.lrange(self._key, 0, -1)
                    items = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
            except Exception as exc:
                self._redis_failed(exc)
        try:
            yield items
        finally:
            if locked:
                try:
                    self._redis.delete(self._lock_key)
                except Exception as exc:
                    self._redis_failed(exc)

    # --- helpers -------------------------------------------------------------------------------------------------

    def _redis_usable(self) -> bool:
        return self._redis is not None and self._clock() >= self._redis_retry_at

    def _redis_failed(self, exc: Exception) -> None:
        self._redis_retry_at = self._clock() + REDIS_RETRY_SECONDS
        log.warning("exposure outbox: Redis unavailable (%s); using %s", type(exc).__name__, self.path)

    @contextmanager
    def _locked_file(self, mode: str) -> Iterator[Any]:
        """The outbox file under an exclusive ``flock``: every process of this host appends to and replays it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (os.O_APPEND if mode == "a" else 0), 0o600)
        with os.fdopen(fd, mode, encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write(db: Database, records: list[str]) -> None:
    """Store ``records`` (JSON lines) in one transaction, in order; existing rows stay as they are."""
    with db.session() as session:
        for line in records:
            item = json.loads(line)
            log_exposure(
                session,
                experiment=item["experiment"],
                unit_id=item["unit_id"],
                variant=item["variant"],
                language=item.get("language"),
                market=item.get("market"),
                surface=item.get("surface"),
                at=datetime.fromisoformat(item["exposed_at"]),
            )


def _exposed_at(line: str) -> str:
    """Sort key: the ISO time (all UTC, same format), so string order is time order."""
    value: str = json.loads(line)["exposed_at"]
    return value
