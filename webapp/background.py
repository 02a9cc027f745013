"""Work a serving process does after it started answering, and how far it has got, for the dashboard's notice.

``shoprank serve --demo`` starts serving first and seeds the demo experiments' traffic afterwards, in a thread
of the same process. Until that thread is done the experiment reports are still filling in; the dashboard says
so (``dashboard/base.html``) rather than letting someone read a half-seeded experiment as a result. The state
lives in the process because the work does: one waitress process serves the demo.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BackgroundSnapshot:
    """What runs (``description``) and how far: ``done`` of ``total`` ``unit``."""

    description: str
    unit: str
    done: int
    total: int


class BackgroundProgress:
    """Thread-safe progress of the one piece of background work a process may run; None when there is none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: BackgroundSnapshot | None = None

    def begin(self, description: str, unit: str, total: int) -> None:
        with self._lock:
            self._current = BackgroundSnapshot(description, unit, 0, total)

    def advance(self, count: int = 1) -> None:
        with self._lock:
            if self._current is not None:
                self._current = replace(self._current, done=min(self._current.done + count, self._current.total))

    def end(self) -> None:
        """The work finished (or failed): the notice goes away."""
        with self._lock:
            self._current = None

    def current(self) -> BackgroundSnapshot | None:
        with self._lock:
            return self._current
