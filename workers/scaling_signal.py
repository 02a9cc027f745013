"""Seconds of model work waiting per rerank queue: the signal the autoscaler scales workers on.

Queue depth counts jobs, but a job of 3 uncached pairs and one of 100 are not the same work, and a
mostly cached job costs the pool almost nothing. The web tier already registers each job's *uncached*
pairs in the backlog (``workers.backlog``) and every live model process advertises the pairs/s it
measured on its own work (``workers.registry``). Dividing one by the other gives how long the pool
needs to clear what it holds: a number that means the same on one CPU worker or ten GPUs, and that an
autoscaler can compare with a target (the Helm chart's KEDA ``ScaledObject`` does, through Prometheus).

Because the depth policy admits only what fits before a search's deadline, the value saturates near
``(deadline - overhead) × safety`` (2 s by default) when the pool is overloaded: a target below that (the chart
uses 1.2 s, chosen with ``bench/autoscale.py``) leaves room to see the overload and grow; shed searches, which
add nothing to the backlog, are watched by a second trigger (``shoprank_searches_total{status="shed"}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workers.celery_app import QUEUE_FOR_DEVICE

#: The label value of the whole pool (every rerank queue together): wakes scaled-to-zero GPU workers.
ALL_QUEUES = "all"


@dataclass(frozen=True)
class WorkWaiting:
    """One queue's (or the whole pool's) uncached backlog, measured throughput and their ratio."""

    pairs: int
    pairs_per_second: float
    #: ``pairs / pairs_per_second``; ``None`` while no live worker has measured a rate (nothing to divide by).
    seconds: float | None


def pool_rates(entries: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Measured pairs/s summed per queue over live model processes (what the web tier's depth policy uses)."""
    rates = dict.fromkeys(QUEUE_FOR_DEVICE.values(), 0.0)
    for entry in entries:
        queue = QUEUE_FOR_DEVICE.get(str(entry.get("device_family")))
        value = entry.get("pairs_per_second")
        if queue is not None and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            rates[queue] += float(value)
    return rates


def _ratio(pairs: int, rate: float) -> WorkWaiting:
    if pairs <= 0:
        return WorkWaiting(0, rate, 0.0)
    return WorkWaiting(pairs, rate, pairs / rate if rate > 0 else None)


def work_waiting(backlog_pairs: Mapping[str, int], entries: Iterable[Mapping[str, Any]]) -> dict[str, WorkWaiting]:
    """Per rerank queue and for ``all`` queues together: uncached pairs waiting ÷ the pool's measured pairs/s."""
    rates = pool_rates(entries)
    result = {queue: _ratio(int(backlog_pairs.get(queue, 0)), rates[queue]) for queue in rates}
    result[ALL_QUEUES] = _ratio(sum(w.pairs for w in result.values()), sum(rates.values()))
    return result
