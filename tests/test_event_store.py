"""Event store: per-unit, per-variant aggregation in SQL over what /api/events stored."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import case, func, select

from experiments.store import Event, EventBatchTooLarge, EventValidationError, ingest_events, parse_events


def test_per_unit_per_variant_aggregation_in_sql(shop_services):
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    raw = []
    for unit, variant, clicks, purchase in [
        ("u1", "control", 2, None),
        ("u2", "treatment", 1, 50),
        ("u3", "treatment", 0, 20.5),
    ]:
        impression = str(uuid.uuid4())
        raw.append(
            {
                "id": impression,
                "type": "impression",
                "unit": unit,
                "experiment": experiment,
                "variant": variant,
                "query": "shoes",
                "items": ["A", "B"],
            }
        )
        raw += [
            {
                "id": str(uuid.uuid4()),
                "type": "click",
                "unit": unit,
                "sku": "A",
                "position": 1,
                "impression_id": impression,
            }
            for _ in range(clicks)
        ]
        if purchase is not None:
            raw.append(
                {
                    "id": str(uuid.uuid4()),
                    "type": "purchase",
                    "unit": unit,
                    "value": purchase,
                    "currency": "EUR",
                    "impression_id": impression,
                }
            )
    with shop_services.db.session() as session:
        assert ingest_events(session, parse_events({"events": raw})).stored == len(raw)
        rows = session.execute(
            select(
                Event.variant,
                Event.unit_id,
                func.sum(case((Event.type == "impression", 1), else_=0)),
                func.sum(case((Event.type == "click", 1), else_=0)),
                func.coalesce(func.sum(Event.order_value), 0),
            )
            .where(Event.experiment == experiment)
            .group_by(Event.experiment, Event.variant, Event.unit_id)
            .order_by(Event.unit_id)
        ).all()
    assert [(v, u, int(i), int(c), Decimal(str(r))) for v, u, i, c, r in rows] == [
        ("control", "u1", 1, 2, Decimal("0")),
        ("treatment", "u2", 1, 1, Decimal("50")),
        ("treatment", "u3", 1, 0, Decimal("20.5")),
    ]


def test_validation_lists_every_problem():
    try:
        parse_events({"events": [{"id": "x"}, {"id": "0123456789", "type": "click", "unit": "u", "position": 0}]})
    except EventValidationError as exc:
        assert any(e.startswith("events[0].id") for e in exc.errors)
        assert any(e.startswith("events[0].type") for e in exc.errors)
        assert "events[1].sku: required" in exc.errors and any("events[1].position" in e for e in exc.errors)
    else:
        raise AssertionError("invalid events were accepted")


def test_an_oversized_batch_is_its_own_error_type():
    """The API answers 413 for this type and 422 for any other validation error, whatever the messages say."""
    click = {"type": "click", "unit": "u", "sku": "A"}
    with pytest.raises(EventBatchTooLarge, match="the limit is 2"):
        parse_events({"events": [{"id": f"bulk-{i:08d}", **click} for i in range(3)]}, max_batch=2)
    with pytest.raises(EventValidationError) as invalid:
        parse_events({"events": [{"id": "x", **click}]}, max_batch=2)
    assert not isinstance(invalid.value, EventBatchTooLarge)
