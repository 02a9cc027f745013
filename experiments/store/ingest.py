"""Validate a batch of client events, then store it idempotently in one statement per table.

A batch is all-or-nothing: one invalid event rejects the batch with every problem
listed, and nothing is written. Stored events are keyed by their client-generated id
and inserted with ``ON CONFLICT DO NOTHING`` (PostgreSQL) / ``OR IGNORE`` (SQLite),
so a retried batch, or a beacon the browser sent twice, stores nothing twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from experiments.store import impression_ids
from experiments.store.models import EVENT_TYPE_VALUES, LISTING_VALUES, Event, ImpressionItem, UnitDayRollup
from shoprank.db import utcnow
from shoprank.storable_text import unstorable_problem

EVENT_TYPES = frozenset(EVENT_TYPE_VALUES)
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TOKEN = re.compile(r"^[a-z][a-z_-]{0,31}$")  # rerank_status, scorer_kind: lower-case words
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_CLOCK_SKEW = timedelta(days=1)
MAX_ITEMS_PER_IMPRESSION = 1000


class EventValidationError(ValueError):
    """The batch was rejected; ``errors`` names each problem as ``events[i].field: message``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
        self.errors = errors


class EventBatchTooLarge(EventValidationError):
    """More events in one batch than the deployment accepts: the client must split it, not fix an event."""


@dataclass(frozen=True, slots=True)
class ValidEvent:
    row: dict[str, Any]  # column values for ``events``
    items: list[dict[str, Any]] = field(default_factory=list)  # ``impression_items`` rows, impressions only


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    stored: int
    duplicates: int
    #: stored clicks, carts and purchases whose impression has not arrived yet: they wait for it (at most
    #: :data:`LATE_IMPRESSION_WAIT`) and count in its experiment once it does
    waiting: int = 0
    #: earlier events of this kind that this batch's impressions picked up
    attached: int = 0


#: How long a click, cart or purchase waits for its impression (separate beacons can arrive out of order); one
#: whose impression comes later than this stays outside the experiment, as an event with an unknown impression.
LATE_IMPRESSION_WAIT = timedelta(minutes=30)


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def _text(raw: Mapping[str, Any], key: str, where: str, problems: _Problems, *, max_len: int, required: bool) -> Any:
    value = raw.get(key)
    if value is None:
        if required:
            problems.add(f"{where}.{key}", "required")
        return None
    if not isinstance(value, str):
        problems.add(f"{where}.{key}", "must be a string")
        return None
    value = value.strip()
    unstorable = unstorable_problem(value)
    if unstorable is not None:
        problems.add(f"{where}.{key}", unstorable)
        return None
    if required and not value:
        problems.add(f"{where}.{key}", "must not be empty")
    elif len(value) > max_len:
        problems.add(f"{where}.{key}", f"longer than {max_len} characters")
    return value or None


def _int(raw: Mapping[str, Any], key: str, where: str, problems: _Problems, *, low: int, high: int) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(f"{where}.{key}", f"must be an integer from {low} to {high}")
        return None
    return value


def _timestamp(value: Any, where: str, problems: _Problems, now: datetime) -> datetime:
    """Epoch milliseconds (what ``Date.now()`` gives) or an ISO 8601 string with a time zone."""
    if value is None:
        return now
    moment: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:  # isfinite too can overflow: a JSON integer may be far larger than any float
            moment = datetime.fromtimestamp(value / 1000, tz=UTC) if math.isfinite(value) else None
        except (OverflowError, OSError, ValueError):
            moment = None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            problems.add(f"{where}.ts", "ISO timestamps need a time zone (e.g. 2025-01-31T12:00:00Z)")
            return now
    if moment is None:
        problems.add(f"{where}.ts", "must be epoch milliseconds or an ISO 8601 timestamp")
        return now
    if not _EARLIEST <= moment <= now + _CLOCK_SKEW:
        problems.add(f"{where}.ts", "is not a plausible event time")
        return now
    # A clock running ahead is accepted (within a day) but dated now: nothing happened in the future, and a
    # future date would put a day that has not begun into the experiment's daily series.
    return min(moment, now)


def _impression_items(raw: Any, where: str, problems: _Problems) -> list[dict[str, Any]]:
    """``items``: skus in rank order, or ``{sku, position?, team?}`` objects."""
    if not isinstance(raw, list):
        problems.add(f"{where}.items", "must be a list of skus or {sku, position, team} objects")
        return []
    if len(raw) > MAX_ITEMS_PER_IMPRESSION:
        problems.add(f"{where}.items", f"more than {MAX_ITEMS_PER_IMPRESSION} items")
        return []
    items: list[dict[str, Any]] = []
    seen_positions: set[int] = set()
    for i, entry in enumerate(raw):
        spot = f"{where}.items[{i}]"
        obj = {"sku": entry} if isinstance(entry, str) else entry
        if not isinstance(obj, Mapping):
            problems.add(spot, "must be a sku or an object")
            continue
        sku = _text(obj, "sku", spot, problems, max_len=64, required=True)
        position = _int(obj, "position", spot, problems, low=1, high=100_000)
        position = position if position is not None else i + 1
        team = _text(obj, "team", spot, problems, max_len=16, required=False)
        if position in seen_positions:
            problems.add(f"{spot}.position", f"position {position} appears twice")
        seen_positions.add(position)
        if sku:
            items.append({"position": position, "sku": sku, "team": team})
    return items


def _token(raw: Mapping[str, Any], key: str, where: str, problems: _Problems, max_len: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or not _TOKEN.match(value):
        problems.add(f"{where}.{key}", "must be a lower-case word such as ok or cross-encoder")
        return None
    return value


def _delivery(raw: Mapping[str, Any], where: str, problems: _Problems) -> dict[str, Any]:
    """What the search served, as its answer reported it (all optional): the delivery check reads these."""
    scorer = raw.get("scorer")
    if scorer is not None and not isinstance(scorer, Mapping):
        problems.add(f"{where}.scorer", "must be the search answer's scorer object or null")
        scorer = None
    scorer = scorer or {}
    search_ms = raw.get("search_ms")
    if search_ms is not None and (
        isinstance(search_ms, bool)
        or not isinstance(search_ms, int | float)
        or not math.isfinite(search_ms)
        or not 0 <= search_ms <= 3_600_000
    ):
        problems.add(f"{where}.search_ms", "must be the search's server time in milliseconds (0 to 3600000)")
        search_ms = None
    return {
        "rerank_status": _token(raw, "rerank_status", where, problems, 16),
        "scorer_kind": _token(scorer, "kind", f"{where}.scorer", problems, 32),
        "scorer_model": _text(scorer, "model_id", f"{where}.scorer", problems, max_len=200, required=False),
        "rerank_depth": _int(raw, "rerank_depth", where, problems, low=0, high=100_000),
        "search_ms": float(search_ms) if search_ms is not None else None,
    }


def _listing(value: Any, where: str, problems: _Problems) -> str | None:
    """``listing``: absent or ``"search"`` for a search results page, else the kind of listing it showed."""
    if value is None or value == "search":
        return None
    if not isinstance(value, str) or value not in LISTING_VALUES:
        problems.add(f"{where}.listing", f"must be search or one of {', '.join(LISTING_VALUES)}")
        return None
    return value


def _money(raw: Any, where: str, problems: _Problems) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        problems.add(f"{where}.value", "required: the order value as a number")
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
        problems.add(f"{where}.value", "must be a non-negative amount")
        return None
    return value.quantize(Decimal("0.01"))


def _parse_one(
    raw: Any, where: str, default_unit: str | None, now: datetime, problems: _Problems, key: bytes | None
) -> ValidEvent | None:
    if not isinstance(raw, Mapping):
        problems.add(where, "must be an object")
        return None
    before = len(problems.errors)
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        problems.add(f"{where}.id", "required: a client-generated id (UUID; 8-64 of A-Z a-z 0-9 _ -)")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:  # a list or object is unhashable, not a type
        kind = None
        problems.add(f"{where}.type", f"must be one of {', '.join(EVENT_TYPE_VALUES)}")
    unit = _text(raw, "unit", where, problems, max_len=128, required=False) or default_unit
    if not unit:
        problems.add(f"{where}.unit", "required: the visitor or user id")
    impression_id = raw.get("impression_id")
    if impression_id is not None and (not isinstance(impression_id, str) or not _EVENT_ID.match(impression_id)):
        problems.add(f"{where}.impression_id", "must be the id of the impression event")
        impression_id = None
    row: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "unit_id": unit,
        "experiment": _text(raw, "experiment", where, problems, max_len=128, required=False),
        "variant": _text(raw, "variant", where, problems, max_len=64, required=False),
        "impression_id": impression_id,
        "occurred_at": _timestamp(raw.get("ts"), where, problems, now),
        "received_at": now,
        "request_id": _text(raw, "request_id", where, problems, max_len=64, required=False),
        "signed": False,
    }
    items: list[dict[str, Any]] = []
    if kind == "impression":
        row["impression_id"] = None
        row["listing"] = _listing(raw.get("listing"), where, problems)
        # A search has a query; a listing (category page, brand page, deals, home) has none, or one it ignores.
        row["query"] = _text(raw, "query", where, problems, max_len=1000, required=row["listing"] is None)
        if row["listing"] is not None:
            row["query"] = None
        row["language"] = _text(raw, "language", where, problems, max_len=16, required=False)
        reranked = raw.get("reranked")
        if reranked is not None and not isinstance(reranked, bool):
            problems.add(f"{where}.reranked", "must be true or false")
        row["reranked"] = reranked if isinstance(reranked, bool) else None
        items = _impression_items(raw.get("items", []), where, problems)
        row["result_count"] = len(items)
        row.update(_delivery(raw, where, problems))
        # Accepted either way; only an id this server issued for exactly this kind, query and count is trusted.
        row["signed"] = (
            key is not None
            and isinstance(event_id, str)
            and impression_ids.verifies(
                key, event_id, kind=row["listing"] or impression_ids.SEARCH, query=row["query"], items=len(items)
            )
        )
    elif kind in ("click", "add_to_cart"):
        row["sku"] = _text(raw, "sku", where, problems, max_len=64, required=True)
        row["position"] = _int(raw, "position", where, problems, low=1, high=100_000)
        if kind == "add_to_cart":
            row["quantity"] = _int(raw, "quantity", where, problems, low=1, high=10_000) or 1
    elif kind == "purchase":
        row["sku"] = _text(raw, "sku", where, problems, max_len=64, required=False)
        row["quantity"] = _int(raw, "quantity", where, problems, low=1, high=10_000)
        row["order_value"] = _money(raw.get("value"), where, problems)
        currency = raw.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            problems.add(f"{where}.currency", "required: an ISO 4217 code such as EUR")
        row["currency"] = currency
    if len(problems.errors) > before:
        return None
    return ValidEvent(row=row, items=items)


def parse_events(
    payload: Any,
    *,
    default_unit: str | None = None,
    max_batch: int = 500,
    now: datetime | None = None,
    impression_key: bytes | None = None,
) -> list[ValidEvent]:
    """Validate ``{"events": [...]}`` (or a bare list). Raises ``EventValidationError`` listing every problem.

    ``impression_key`` (:func:`impression_ids.impression_key` of the deployment's secret) marks the impressions whose
    id this server signed for what they carry; without it none is (search analytics then counts none of them).

    ``EventBatchTooLarge`` (a kind of ``EventValidationError``) when there are more than ``max_batch`` events.
    """
    now = now or utcnow()
    events = payload.get("events") if isinstance(payload, Mapping) else payload
    if not isinstance(events, list):
        raise EventValidationError(['body: expected {"events": [ ... ]}'])
    if not events:
        raise EventValidationError(["events: the batch is empty"])
    if len(events) > max_batch:
        raise EventBatchTooLarge([f"events: {len(events)} events in one batch; the limit is {max_batch}"])
    problems = _Problems()
    parsed = [
        _parse_one(raw, f"events[{i}]", default_unit, now, problems, impression_key) for i, raw in enumerate(events)
    ]
    if problems.errors:
        raise EventValidationError(problems.errors)
    return [event for event in parsed if event is not None]


def _dialect_insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    raise RuntimeError(f"event store: unsupported database {name!r}")  # pragma: no cover - only these two


def _inherit_assignment(session: Session, events: Sequence[ValidEvent]) -> set[str]:
    """Clicks, carts and purchases take experiment and variant from their impression.

    The server logged (or accepted) the impression with the variant that ranked it;
    trusting that over what a page echoes back keeps a stale tab from crediting the
    wrong arm.
    """
    wanted = {e.row["impression_id"] for e in events if e.row["impression_id"]}
    if not wanted:
        return set()
    known: dict[str, tuple[str | None, str | None]] = {
        e.row["event_id"]: (e.row["experiment"], e.row["variant"]) for e in events if e.row["type"] == "impression"
    }
    missing = wanted - known.keys()
    if missing:
        rows = session.execute(
            select(Event.event_id, Event.experiment, Event.variant).where(
                Event.event_id.in_(missing), Event.type == "impression"
            )
        )
        known.update({event_id: (experiment, variant) for event_id, experiment, variant in rows})
    for event in events:
        assignment = known.get(event.row["impression_id"] or "")
        if assignment is not None and event.row["type"] != "impression":
            event.row["experiment"], event.row["variant"] = assignment
    return wanted - known.keys()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _attach_waiting(session: Session, impressions: Sequence[ValidEvent]) -> int:
    """Give the clicks, carts and purchases that arrived before these (newly stored) impressions their experiment
    and variant, and count them in the rollups; returns how many were attached.

    Only events of the impression's own unit, received at most :data:`LATE_IMPRESSION_WAIT` before it, and not
    yet in an experiment: a beacon cannot move another shopper's event, and a click the client already tied to
    an experiment stays where the screening put it.
    """
    by_id = {e.row["event_id"]: e for e in impressions if e.row.get("experiment")}
    if not by_id:
        return 0
    rows = session.execute(
        select(
            Event.event_id,
            Event.type,
            Event.unit_id,
            Event.impression_id,
            Event.occurred_at,
            Event.received_at,
            Event.order_value,
            Event.currency,
        ).where(Event.impression_id.in_(by_id), Event.type != "impression", Event.experiment.is_(None))
    )
    attach: dict[tuple[str, str | None], list[str]] = {}
    waited: list[ValidEvent] = []
    for event_id, kind, unit, impression_id, occurred, received, value, currency in rows:
        impression = by_id[impression_id].row
        if unit != impression["unit_id"]:
            continue
        if _aware(impression["received_at"]) - _aware(received) > LATE_IMPRESSION_WAIT:
            continue
        attach.setdefault((impression["experiment"], impression["variant"]), []).append(event_id)
        waited.append(
            ValidEvent(
                {
                    "type": kind,
                    "experiment": impression["experiment"],
                    "unit_id": unit,
                    "occurred_at": _aware(occurred),
                    "order_value": value,
                    "currency": currency,
                }
            )
        )
    for (experiment, variant), ids in attach.items():
        session.execute(update(Event).where(Event.event_id.in_(ids)).values(experiment=experiment, variant=variant))
    _upsert_rollups(session, _dialect_insert(session), _rollup_increments(waited))
    return len(waited)


#: PostgreSQL array types of the columns the fast path binds (one array parameter per column).
_PG_TYPES = {
    "event_id": "varchar",
    "type": "varchar",
    "unit_id": "varchar",
    "experiment": "varchar",
    "variant": "varchar",
    "impression_id": "varchar",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "query": "text",
    "listing": "varchar",
    "language": "varchar",
    "reranked": "boolean",
    "result_count": "integer",
    "rerank_status": "varchar",
    "scorer_kind": "varchar",
    "scorer_model": "varchar",
    "rerank_depth": "integer",
    "search_ms": "float8",
    "sku": "varchar",
    "position": "integer",
    "quantity": "integer",
    "order_value": "numeric",
    "currency": "varchar",
    "request_id": "varchar",
    "signed": "boolean",
    "team": "varchar",
    "day": "date",
    "impressions": "integer",
    "clicks": "integer",
    "purchases": "integer",
    "revenue": "float8",
}


def _unnest_insert(session: Session, table: str, rows: list[dict[str, Any]], tail: str) -> Any:
    """``INSERT … SELECT * FROM unnest(array, array, …) <tail>``: one small statement with one array per column.

    PostgreSQL plans it once and reads the arrays in binary; a multi-row VALUES list of the same rows is a
    statement with thousands of parameters that the driver must rewrite on every call (several times slower).
    """
    columns = list(rows[0])
    arrays = ", ".join(f"CAST(:{name} AS {_PG_TYPES[name]}[])" for name in columns)
    names = ", ".join(f'"{name}"' for name in columns)
    # Bandit B608 reviewed: table, column names and tail are module constants; every value is a bound parameter.
    sql = text(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}")  # nosec B608 - see above
    return session.execute(sql, {name: [row[name] for row in rows] for name in columns})


def _copy_items(session: Session, items: list[dict[str, Any]]) -> None:
    """COPY the items of newly stored impressions (the bulk of the rows: ten or more per impression).

    No conflict is possible: an impression id is new in this transaction (a concurrent duplicate waits on the
    event's primary key and then stores nothing), so the plain COPY needs no ON CONFLICT and is the fastest
    way PostgreSQL takes rows.
    """
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]  # None only once the pool closed it; this one is live
        statement = "COPY impression_items (impression_id, position, sku, team) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(statement) as copy:
            copy.set_types(["varchar", "int4", "varchar", "varchar"])
            for item in items:
                copy.write_row((item["impression_id"], item["position"], item["sku"], item["team"]))


def _insert_postgresql(session: Session, rows: list[dict[str, Any]], fresh_items: Any, rollups: Any) -> set[str]:
    stored = set(
        _unnest_insert(session, "events", rows, "ON CONFLICT (event_id) DO NOTHING RETURNING event_id").scalars()
    )
    items = fresh_items(stored)
    if items:
        _copy_items(session, items)
    increments = rollups(stored)
    if increments:
        updates = ", ".join(
            f"{name} = unit_day_rollups.{name} + excluded.{name}"
            for name in ("impressions", "clicks", "purchases", "revenue")
        )
        _unnest_insert(
            session,
            "unit_day_rollups",
            increments,
            f"ON CONFLICT (experiment, unit_id, day, currency) DO UPDATE SET {updates}",  # nosec B608 - constants
        )
    return stored


def _rollup_increments(events: Sequence[ValidEvent]) -> list[dict[str, Any]]:
    """Per (experiment, unit, UTC day, purchase currency) counter increments of newly stored events."""
    totals: dict[tuple[str, str, Any, str], list[float]] = {}
    for event in events:
        row = event.row
        kind = row["type"]
        if not row.get("experiment") or kind not in ("impression", "click", "purchase"):
            continue
        currency = (row.get("currency") or "") if kind == "purchase" else ""
        day = row["occurred_at"].astimezone(UTC).date()
        counters = totals.setdefault((row["experiment"], row["unit_id"], day, currency), [0, 0, 0, 0.0])
        if kind == "impression":
            counters[0] += 1
        elif kind == "click":
            counters[1] += 1
        else:
            counters[2] += 1
            counters[3] += float(row.get("order_value") or 0)
    return [
        {
            "experiment": experiment,
            "unit_id": unit,
            "day": day,
            "currency": currency,
            "impressions": imp,
            "clicks": clk,
            "purchases": pur,
            "revenue": rev,
        }
        for (experiment, unit, day, currency), (imp, clk, pur, rev) in sorted(totals.items())
    ]


def _upsert_rollups(session: Session, insert: Any, increments: list[dict[str, Any]]) -> None:
    if not increments:
        return
    table = UnitDayRollup.__table__
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["experiment", "unit_id", "day", "currency"],
        set_={
            name: table.c[name] + statement.excluded[name] for name in ("impressions", "clicks", "purchases", "revenue")
        },
    )
    session.execute(statement, increments)


def ingest_events(session: Session, events: Sequence[ValidEvent]) -> IngestResult:
    """Store ``events``; already-stored ids are skipped. The caller commits (one transaction per batch).

    Rows go in as one executemany per table (SQLAlchemy batches them into multi-row INSERTs with RETURNING), and
    the per-unit-day rollups the experiment report reads are bumped for the newly stored events only, in the same
    transaction, so the report and the events can never disagree.
    """
    unique: dict[str, ValidEvent] = {}
    for event in events:
        unique.setdefault(event.row["event_id"], event)
    # Rows go in id order: two transactions inserting overlapping ids then lock them in the same order, so one
    # waits for the other instead of both deadlocking (the same batch retried while the first is in flight).
    batch = [unique[event_id] for event_id in sorted(unique)]
    if not batch:
        return IngestResult(received=len(events), stored=0, duplicates=len(events))
    unknown_impressions = _inherit_assignment(session, batch)
    columns = [c.name for c in Event.__table__.columns]
    rows = [{col: e.row.get(col) for col in columns} | {"signed": bool(e.row.get("signed"))} for e in batch]

    def fresh_items(stored: set[str]) -> list[dict[str, Any]]:
        return [
            {"impression_id": e.row["event_id"], "position": item["position"], "sku": item["sku"], "team": item["team"]}
            for e in batch
            if e.row["event_id"] in stored
            for item in e.items
        ]

    def rollups(stored: set[str]) -> list[dict[str, Any]]:
        return _rollup_increments([e for e in batch if e.row["event_id"] in stored])

    def result(stored: set[str]) -> IngestResult:
        fresh = [e for e in batch if e.row["event_id"] in stored]
        waiting = sum(
            1
            for e in fresh
            if e.row["type"] != "impression"
            and e.row["impression_id"] in unknown_impressions
            and not e.row.get("experiment")
        )
        attached = _attach_waiting(session, [e for e in fresh if e.row["type"] == "impression"])
        return IngestResult(len(events), len(stored), len(events) - len(stored), waiting, attached)

    if session.get_bind().dialect.name == "postgresql":
        return result(_insert_postgresql(session, rows, fresh_items, rollups))
    insert = _dialect_insert(session)
    # Core tables, not ORM entities: the ORM's bulk path would send one INSERT per row to get RETURNING values,
    # Core batches rows into multi-row INSERTs ("insertmanyvalues") with RETURNING.
    events_table = Event.__table__
    statement = insert(events_table).on_conflict_do_nothing(index_elements=["event_id"])
    stored: set[str] = set(session.execute(statement.returning(events_table.c.event_id), rows).scalars())
    items = fresh_items(stored)
    if items:
        session.execute(insert(ImpressionItem.__table__).on_conflict_do_nothing(), items)
    _upsert_rollups(session, insert, rollups(stored))
    return result(stored)
