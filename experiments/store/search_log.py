"""What shoppers searched for, read from the impression log: the autocomplete's "past searches" and the
no-results page's "popular searches"."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from experiments.store.models import Event


def popular_queries(
    session: Session, *, since: datetime | None = None, limit: int = 500
) -> list[tuple[str, str | None, int]]:
    """``(query, language, searches)``, most searched first; searches that showed nothing are left out
    (a misspelling nobody found anything for is no suggestion)."""
    searches = func.count(Event.event_id)
    statement = (
        select(Event.query, Event.language, searches)
        .where(Event.type == "impression", Event.query.is_not(None), Event.result_count > 0)
        .group_by(Event.query, Event.language)
        .order_by(searches.desc(), Event.query)
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(Event.occurred_at >= since)
    return [
        (query, language, int(count))
        for query, language, count in session.execute(statement)
        if query and query.strip()  # never None: the query leaves those out
    ]
