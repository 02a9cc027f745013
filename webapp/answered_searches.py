"""Records the searches the shop's own search page answered with results, off the request thread.

These rows are autocomplete's only source of past searches (:mod:`experiments.store.suggestions` says why the
client-reported impression log is not). Writing them must never slow or fail a shopper's search, including while
the database is slow or down: :meth:`AnsweredSearchRecorder.record` only puts the search on a bounded queue, and a
daemon thread writes the queue in batches every ``interval`` seconds. Rows that cannot be written stay queued
(up to ``max_pending``) for the next attempt; beyond that they are dropped, which costs a suggestion at worst.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from experiments.store.suggestions import Answered, record_answered, suggestible
from shoprank.db import Database

log = logging.getLogger(__name__)


class AnsweredSearchRecorder:
    def __init__(self, db: Database, *, enabled: bool = True, interval: float = 1.0, max_pending: int = 10_000) -> None:
        self._db = db
        self._enabled = enabled
        self._interval = interval
        self._pending: deque[Answered] = deque(maxlen=max_pending)
        self._recent: set[tuple[str, str, str]] = set()  # written or queued: a shopper's repeat costs nothing
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, query: str, language: str | None, visitor: str) -> None:
        """Queue one answered search (cheap; never raises, never waits for the database)."""
        if not self._enabled or not visitor or not suggestible(query):
            return
        key = (" ".join(query.casefold().split()), language or "", visitor)
        with self._lock:
            if key in self._recent:
                return
            if len(self._recent) >= 100_000:  # a memory bound; the table's primary key still dedups
                self._recent.clear()
            self._recent.add(key)
            self._pending.append(Answered(query, language, visitor))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="answered-searches", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        """Write what is queued now, in the caller's thread; returns the rows that were new. Tests call this."""
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        if not batch:
            return 0
        try:
            with self._db.session() as session:
                return record_answered(session, batch)
        except Exception:
            log.warning("could not record %d answered searches; retrying later", len(batch), exc_info=True)
            with self._lock:
                self._pending.extendleft(reversed(batch))
            return 0

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
