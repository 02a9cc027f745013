"""Exposure log: the first time a unit is served an experiment's variant, stored once (insert-ignore)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from experiments.store.experiment_models import Exposure
from experiments.store.ingest import _dialect_insert
from shoprank.db import utcnow


def log_exposure(
    session: Session,
    *,
    experiment: str,
    unit_id: str,
    variant: str,
    language: str | None = None,
    market: str | None = None,
    surface: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Record the exposure unless one exists for (experiment, unit); True when this call stored it.

    The primary key decides under concurrency: two web processes racing on a unit's first search store one row,
    and the first exposure's variant, language and market stay (a unit is in one per-language slice).
    """
    insert = _dialect_insert(session)
    statement = (
        insert(Exposure)
        .values(
            experiment=experiment,
            unit_id=unit_id,
            variant=variant,
            language=(language or None) and language[:16].lower(),
            market=(market or None) and market[:8].upper(),
            surface=surface,
            exposed_at=at or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["experiment", "unit_id"])
        .returning(Exposure.unit_id)
    )
    return session.scalar(statement) is not None
