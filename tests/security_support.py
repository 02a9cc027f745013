"""Helpers for the rate-limit tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_one_window(run: Callable[[], T], window_seconds: int = 60) -> T:
    """``run()`` again (once) if a fixed rate-limit window ended while it ran, which resets the counters.

    ``run`` must start from fresh counters each time (a new window does that in Redis; memory tests clear).
    """
    for _ in range(2):
        start = int(time.time() // window_seconds)
        result = run()
        if int(time.time() // window_seconds) == start:
            return result
    return result
