"""Which events of a valid batch cannot count, and why: the events API stores the rest and reports these.

A well-formed event can still be about something that does not exist for the server: an experiment key nobody
defined, a variant the shopper was never served (the report takes each unit's variant from the exposure log,
so such an event would be stored and never shown), or an id that already belongs to a stored event of another
type (``ON CONFLICT DO NOTHING`` would count it as a harmless retry). Storing those silently lets a client
believe its events counted; so they are set aside, not stored, and returned as ``ignored`` with a reason and
the field at fault. A genuine retry (same id, same type) stays a duplicate.

Clicks, carts and purchases are judged after they inherit experiment and variant from their impression, exactly
as ingestion stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from experiments.store.experiment_models import Experiment, Exposure
from experiments.store.ingest import ValidEvent, _inherit_assignment
from experiments.store.models import Event


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    index: int  # position in the batch
    event_id: str
    field: str
    reason: str  # unknown_experiment | not_exposed | variant_not_assigned | id_conflict
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.event_id,
            "field": f"events[{self.index}].{self.field}",
            "reason": self.reason,
            "message": self.message,
        }


def screen_events(session: Session, events: Sequence[ValidEvent]) -> tuple[list[ValidEvent], list[IgnoredEvent]]:
    """``(events that count, events set aside)``; three indexed lookups per batch, whatever its size."""
    _inherit_assignment(session, events)
    ignored: dict[int, IgnoredEvent] = {}
    _screen_ids(session, events, ignored)
    _screen_assignments(session, events, ignored)
    kept = [event for index, event in enumerate(events) if index not in ignored]
    return kept, sorted(ignored.values(), key=lambda item: item.index)


def _screen_ids(session: Session, events: Sequence[ValidEvent], ignored: dict[int, IgnoredEvent]) -> None:
    ids = {event.row["event_id"] for event in events}
    rows = session.execute(select(Event.event_id, Event.type).where(Event.event_id.in_(ids)))
    known: dict[str, str] = {event_id: kind for event_id, kind in rows}
    for index, event in enumerate(events):
        event_id, kind = event.row["event_id"], event.row["type"]
        stored = known.setdefault(event_id, kind)  # the first of the batch claims a new id
        if stored != kind:
            message = f"id {event_id} already belongs to a {stored} event; send each event with its own id"
            ignored[index] = IgnoredEvent(index, event_id, "id", "id_conflict", message)


def _screen_assignments(session: Session, events: Sequence[ValidEvent], ignored: dict[int, IgnoredEvent]) -> None:
    claims = {
        index: (event.row["experiment"], event.row["unit_id"])
        for index, event in enumerate(events)
        if event.row.get("experiment") and index not in ignored
    }
    if not claims:
        return
    keys = {experiment for experiment, _ in claims.values()}
    existing = set(session.scalars(select(Experiment.key).where(Experiment.key.in_(keys))))
    pairs = {claim for claim in claims.values() if claim[0] in existing}
    exposed: dict[tuple[str, str], str] = {}
    if pairs:
        rows = session.execute(
            select(Exposure.experiment, Exposure.unit_id, Exposure.variant).where(
                tuple_(Exposure.experiment, Exposure.unit_id).in_(sorted(pairs))
            )
        )
        exposed = {(experiment, unit): variant for experiment, unit, variant in rows}
    for index, (experiment, unit) in claims.items():
        event_id, claimed = events[index].row["event_id"], events[index].row.get("variant")
        if experiment not in existing:
            message = f"no experiment has the key {experiment!r}"
            ignored[index] = IgnoredEvent(index, event_id, "experiment", "unknown_experiment", message)
        elif (experiment, unit) not in exposed:
            message = f"unit {unit!r} was never served experiment {experiment!r}, so its events cannot count in it"
            ignored[index] = IgnoredEvent(index, event_id, "unit", "not_exposed", message)
        elif claimed is not None and claimed != exposed[(experiment, unit)]:
            message = (
                f"unit {unit!r} is assigned variant {exposed[(experiment, unit)]!r} of {experiment!r}, not {claimed!r}"
            )
            ignored[index] = IgnoredEvent(index, event_id, "variant", "variant_not_assigned", message)
