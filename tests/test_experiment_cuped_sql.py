"""CUPED's pre-exposure sums in SQL (SQLite and PostgreSQL) equal the same sums computed in Python from the
events; the experiment page shows the Bayesian and CUPED views from them."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from experiments.store import ingest_events, parse_events
from experiments.store.covariates import pre_period_report
from experiments.store.exposures import log_exposure
from shoprank.users import create_user
from tests.experiment_support import ab_spec, reset_experiments, running

RATES = {"USD": 1.0, "EUR": 1.1}
KEY = "cuped"


@pytest.fixture
def clean(shop_services):
    reset_experiments(shop_services)
    yield shop_services
    reset_experiments(shop_services)


def _impression(unit: str, when: dt.datetime, experiment: str | None, variant: str | None) -> dict:
    return {
        "id": uuid.uuid4().hex,
        "type": "impression",
        "unit": unit,
        "experiment": experiment,
        "variant": variant,
        "query": "shoes",
        "ts": when.isoformat(),
        "items": ["A", "B"],
    }


def _activity(events: list, unit: str, when: dt.datetime, n: int, buy: bool, experiment=None, variant=None):
    """``n`` impressions, each clicked once; a purchase after the first when ``buy``; returns (imp, clk, rev)."""
    revenue = 0.0
    for index in range(n):
        impression = _impression(unit, when + dt.timedelta(minutes=index), experiment, variant)
        events.append(impression)
        events.append(
            {"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": "A", "impression_id": impression["id"],
             "position": 1, "ts": impression["ts"]}
        )  # fmt: skip
        if buy and index == 0:
            events.append(
                {"id": uuid.uuid4().hex, "type": "purchase", "unit": unit, "value": 20.0, "currency": "EUR",
                 "impression_id": impression["id"], "ts": impression["ts"]}
            )  # fmt: skip
            revenue = 20.0 * RATES["EUR"]
    return float(n), float(n), revenue


def _simulate(now: dt.datetime, units: int) -> tuple[list, list, dict]:
    rng = random.Random(7)
    events, exposures, truth = [], [], {}
    for index in range(units):
        unit = f"cu{index}"
        variant = "control" if index % 2 else "treatment"
        language = rng.choice(["en", "de"])
        exposed = now - dt.timedelta(days=2, hours=rng.randint(0, 20))
        exposures.append((unit, variant, language, exposed))
        propensity = rng.randint(0, 3)
        # before exposure: inside the 14-day window (counts) and 20 days before (does not)
        pre = _activity(events, unit, exposed - dt.timedelta(days=3), propensity, propensity >= 2)
        _activity(events, unit, exposed - dt.timedelta(days=20), 2, True)
        post = _activity(events, unit, exposed + dt.timedelta(hours=1), propensity + rng.randint(0, 1), propensity >= 2,
                         KEY, variant)  # fmt: skip
        truth[unit] = (variant, language, pre, post)
    return events, exposures, truth


def _ingest_as_received(session, events: list, skew: dt.timedelta = dt.timedelta(0)) -> None:
    """Store each event as the server would have received it at its client time plus ``skew`` (the client's
    clock runs ``skew`` behind the server's)."""
    by_time: dict[dt.datetime, list] = {}
    for event in events:
        by_time.setdefault(dt.datetime.fromisoformat(event["ts"]) + skew, []).append(event)
    for received, batch in sorted(by_time.items()):
        for start in range(0, len(batch), 500):
            ingest_events(session, parse_events({"events": batch[start : start + 500]}, max_batch=500, now=received))


def test_pre_period_sums_match_python(clean):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    events, exposures, truth = _simulate(now, 60)
    with clean.db.session() as session:
        _ingest_as_received(session, events)
        for unit, variant, language, at in exposures:
            log_exposure(session, experiment=KEY, unit_id=unit, variant=variant, language=language, at=at)
    with clean.db.session() as session:
        report = pre_period_report(session, KEY, RATES)
    assert set(report) == {(lang, v) for lang in ("en", "de") for v in ("control", "treatment")}
    for (language, variant), sums in report.items():
        rows = [(pre, post) for v, lang, pre, post in truth.values() if v == variant and lang == language]
        assert sums.units == len(rows)
        assert sums.impressions == sum(pre[0] for pre, _ in rows)
        assert sums.impressions_sq == sum(pre[0] ** 2 for pre, _ in rows)
        assert sums.impressions_x_post == sum(pre[0] * post[0] for pre, post in rows)
        assert sums.clicks_x_post == sum(pre[1] * post[1] for pre, post in rows)
        assert sums.converted_units == sum(1 for pre, _ in rows if pre[2] > 0)
        assert sums.converted_x_post == sum(1 for pre, post in rows if pre[2] > 0 and post[2] > 0)
        assert sums.revenue == pytest.approx(sum(pre[2] for pre, _ in rows))
        assert sums.revenue_x_post == pytest.approx(sum(pre[2] * post[2] for pre, post in rows))
        assert sums.active_units == sum(1 for pre, _ in rows if pre[0] > 0)
    with clean.db.session() as session, pytest.raises(ValueError, match="window_days"):
        pre_period_report(session, KEY, RATES, window_days=0)


def test_experiment_page_bayesian_and_cuped(clean, shop_app):
    from tests.test_dashboard import PASSWORD, _login

    running(clean, ab_spec(KEY))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    events, exposures, _ = _simulate(now, 80)
    with clean.db.session() as session:
        create_user(session, "merch@example.com", PASSWORD, "merchandiser")
        _ingest_as_received(session, events)
        for unit, variant, language, at in exposures:
            log_exposure(session, experiment=KEY, unit_id=unit, variant=variant, language=language, at=at)
    client = shop_app.test_client()
    _login(client)
    plain = client.get(f"/dashboard/experiments/{KEY}").get_data(as_text=True)
    assert 'id="engine-panel"' in plain and 'id="engine-table"' not in plain
    page = client.get(f"/dashboard/experiments/{KEY}?engine=bayesian&cuped=1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="engine-table"' in html
    assert "Chance to win" in html and "Variance removed" in html
    assert 'data-metric="clicks_per_unit" data-variant="treatment"' in html
    assert "ratio metric: not adjusted" in html  # CTR
    assert "had history" in html
    assert client.get(f"/dashboard/experiments/{KEY}?engine=magic").status_code == 400


def test_pre_period_is_what_the_server_received_before_exposure(clean):
    """Issue 23 item 1: with client clocks 5 minutes behind, the experiment's own first events carry client
    times before the exposure; they were received after it, so they are not history."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    skew = dt.timedelta(minutes=5)
    events: list = []
    exposures = []
    for index in range(20):
        unit = f"sk{index}"
        variant = "control" if index % 2 else "treatment"
        exposed = now - dt.timedelta(days=1, hours=index)
        exposures.append((unit, variant, exposed))
        # client clock 5 minutes behind: stamped 4 minutes before the exposure, received 1 minute after it
        _activity(events, unit, exposed - dt.timedelta(minutes=4), 2, True, KEY, variant)
        if index < 5:  # five shoppers with true history: received two days before their exposure
            _activity(events, unit, exposed - dt.timedelta(days=2), 1, False)
    with clean.db.session() as session:
        _ingest_as_received(session, events, skew)
        for unit, variant, at in exposures:
            log_exposure(session, experiment=KEY, unit_id=unit, variant=variant, language="en", at=at)
    with clean.db.session() as session:
        report = pre_period_report(session, KEY, RATES)
    assert sum(s.units for s in report.values()) == 20
    assert sum(s.active_units for s in report.values()) == 5  # not 20: the in-experiment events are not history
    assert sum(s.impressions for s in report.values()) == 5.0
    assert sum(s.converted_units for s in report.values()) == 0
