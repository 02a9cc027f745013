"""Late impressions (issue 23 item 14): a click or purchase whose impression has not arrived yet (separate
beacons) waits for it, bounded in time, and is attached to its experiment when the impression arrives, instead
of being stored with no experiment and never counting. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from experiments.manage import create_experiment, start_experiment
from experiments.store import Event, ingest_events, parse_events
from experiments.store.aggregate import ab_report
from experiments.store.exposures import log_exposure
from experiments.store.ingest import LATE_IMPRESSION_WAIT
from tests.experiment_support import ab_spec
from tests.test_delivery import event_db  # noqa: F401  (fixture)

RATES = {"USD": 1.0}


def _ingest(db, events, now):
    with db.session() as session:
        return ingest_events(session, parse_events({"events": events}, now=now))


def test_click_and_purchase_before_their_impression_are_attached_when_it_arrives(event_db):  # noqa: F811
    key = f"late-{uuid.uuid4().hex[:8]}"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with event_db.db.session() as session:
        start_experiment(session, create_experiment(session, ab_spec(key), "tests"), "tests")
        log_exposure(session, experiment=key, unit_id="u1", variant="treatment", at=now - dt.timedelta(minutes=5))
        log_exposure(session, experiment=key, unit_id="u2", variant="control", at=now - dt.timedelta(hours=3))
    impression, stale = uuid.uuid4().hex, uuid.uuid4().hex
    early = [
        {"id": uuid.uuid4().hex, "type": "click", "unit": "u1", "sku": "A", "position": 1, "impression_id": impression},
        {"id": uuid.uuid4().hex, "type": "purchase", "unit": "u1", "value": 25, "currency": "USD",
         "impression_id": impression},
    ]  # fmt: skip
    outcome = _ingest(event_db.db, early, now - dt.timedelta(seconds=20))
    assert outcome.stored == 2 and outcome.waiting == 2  # said, not silently dropped into "no experiment"
    with event_db.db.session() as session:
        assert ab_report(session, key, RATES).totals()["treatment"].clicks == 0
    # a click whose impression comes far too late is not attached: the wait is bounded
    old_click = {"id": uuid.uuid4().hex, "type": "click", "unit": "u2", "sku": "A", "impression_id": stale}
    _ingest(event_db.db, [old_click], now - LATE_IMPRESSION_WAIT - dt.timedelta(minutes=1))

    shown = [
        {"id": impression, "type": "impression", "unit": "u1", "query": "shoes", "experiment": key,
         "variant": "treatment", "items": ["A", "B"]},
        {"id": stale, "type": "impression", "unit": "u2", "query": "shoes", "experiment": key,
         "variant": "control", "items": ["A"]},
    ]  # fmt: skip
    outcome = _ingest(event_db.db, shown, now)
    assert outcome.attached == 2
    with event_db.db.session() as session:
        totals = ab_report(session, key, RATES).totals()
        assert totals["treatment"].clicks == 1 and totals["treatment"].converted_units == 1
        assert totals["treatment"].revenue == 25.0
        assert totals["control"].clicks == 0  # waited longer than the bound
        rows = session.execute(select(Event.type, Event.experiment, Event.variant).where(Event.unit_id == "u1"))
        assert {(t, e, v) for t, e, v in rows} == {
            ("click", key, "treatment"),
            ("purchase", key, "treatment"),
            ("impression", key, "treatment"),
        }
    # a retried impression attaches nothing twice
    assert _ingest(event_db.db, shown, now).attached == 0
