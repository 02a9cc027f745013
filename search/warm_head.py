"""A warm head: pair scores of the most frequent recent queries are in the cache before shoppers ask.

Shop queries are head-heavy: a few dozen queries make up a large share of searches.
``head_queries`` reads them from the impression log; ``warm_head`` asks the search
service for each one's current first-stage head (the passages a search would send)
and hands them to the dispatcher's ``warm``, which scores them at low priority (idle
worker time, never ahead of a live job) into the shared pair-score cache. A search
for a warmed query is then answered from the cache at full depth.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import column, func, select, table

from reranking.text import normalize_query
from shoprank.db import Database

log = logging.getLogger(__name__)

_events = table("events", column("type"), column("query"), column("occurred_at"))


def head_queries(db: Database, *, since: datetime, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most searched queries since ``since``, with their impression counts, most frequent first."""
    counted = (
        select(_events.c.query, func.count().label("n"))
        .where(_events.c.type == "impression", _events.c.occurred_at >= since, _events.c.query.is_not(None))
        .group_by(_events.c.query)
        .order_by(func.count().desc())
        .limit(limit * 4)  # spelling variants of one query merge below
    )
    with db.session() as session:
        # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
        rows: Sequence[tuple[Any, ...]] = session.execute(counted).all()
    merged: Counter[str] = Counter()
    for query, n in rows:
        normalized = normalize_query(str(query))
        if normalized:
            merged[normalized] += int(n)
    return merged.most_common(limit)


@dataclass(frozen=True, slots=True)
class WarmReport:
    queries: int  # queries handed to the warmer
    pairs: int  # (query, passage) pairs requested
    over_budget: int  # head queries left out by the pair budget
    failed: int  # queries whose first stage failed

    def as_dict(self) -> dict[str, int]:
        return {"queries": self.queries, "pairs": self.pairs, "over_budget": self.over_budget, "failed": self.failed}


def warm_head(
    head: list[tuple[str, int]],
    passages_for: Callable[[str, int], list[str]],
    warm: Callable[[str, list[str]], None],
    *,
    depth: int,
    budget_pairs: int,
) -> WarmReport:
    """Warm the ``depth``-candidate head of each query in ``head`` (most frequent first) within ``budget_pairs``.

    ``passages_for`` is ``SearchService.head_passages``; ``warm`` is the dispatcher's ``warm``.
    """
    queries = pairs = over = failed = 0
    for query, _ in head:
        if pairs >= budget_pairs:
            over += 1
            continue
        try:
            passages = passages_for(query, depth)[: budget_pairs - pairs]
        except Exception as exc:  # one odd query must not stop the warming of the rest
            log.warning("warm-head: no first stage for %r: %s", query, exc)
            failed += 1
            continue
        if not passages:
            continue
        warm(query, passages)
        queries += 1
        pairs += len(passages)
    return WarmReport(queries, pairs, over, failed)


def since_hours(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def repeat_rounds(
    run_once: Callable[[], WarmReport],
    *,
    every_seconds: float,
    rounds: int | None = None,
    report: Callable[[WarmReport], None] = lambda _: None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run ``run_once`` every ``every_seconds`` (``rounds`` times; None: until interrupted); returns rounds run.

    The warm head is only worth something while it follows what shoppers search now, so a deployment runs it
    as a loop beside the workers (compose service ``warm-head``) rather than once. A round that fails (the
    database or Redis briefly away) is logged and the next one tries again: the loop outlives outages.
    """
    wait = sleep or time.sleep
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        try:
            report(run_once())
        except Exception:
            log.exception("warm-head round failed; trying again in %.0f s", every_seconds)
        done += 1
        if rounds is not None and done >= rounds:
            break
        wait(max(0.0, every_seconds - (time.monotonic() - started)))
    return done
