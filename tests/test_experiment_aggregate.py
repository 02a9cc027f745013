"""SQL rollups (SQLite and PostgreSQL) equal the same statistics computed in Python from the raw events:
totals, per language, cumulative per day, revenue in the reporting currency, interleaving credit."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from experiments.stats import UnitAggregates
from experiments.store import ingest_events, parse_events
from experiments.store.aggregate import ab_report, interleaving_report
from experiments.store.currency import parse_rates, reporting_rates
from experiments.store.exposures import log_exposure
from tests.experiment_support import reset_experiments

RATES = {"USD": 1.0, "EUR": 1.1, "JPY": 0.007}


@pytest.fixture
def clean(shop_services):
    reset_experiments(shop_services)
    yield shop_services
    reset_experiments(shop_services)


def _simulate(rng: random.Random, key: str, units: int, now: dt.datetime):
    """Random units over 5 days; returns events, exposures and the per-unit truth per (unit) and day."""
    events, exposures, truth = [], [], {}
    for index in range(units):
        unit = f"{key}-u{index}"
        variant = rng.choice(["control", "treatment"])
        language = rng.choice(["en", "de", "ja", None])
        exposed_day = rng.randint(0, 4)
        exposures.append((unit, variant, language, now - dt.timedelta(days=4 - exposed_day, hours=1)))
        per_day = {}
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
            day = rng.randint(exposed_day, 4)
            when = now - dt.timedelta(days=4 - day, minutes=rng.randint(1, 50))
            impression = uuid.uuid4().hex
            events.append(
                {
                    "id": impression,
                    "type": "impression",
                    "unit": unit,
                    "experiment": key,
                    "variant": variant,
                    "query": "q",
                    "ts": when.isoformat(),
                    "items": ["A", "B", "C"],
                }
            )
            row = per_day.setdefault(when.date(), [0, 0, 0, 0.0])
            row[0] += 1
            for _ in range(rng.choice([0, 0, 1, 2])):
                events.append(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "click",
                        "unit": unit,
                        "sku": "A",
                        "impression_id": impression,
                        "ts": when.isoformat(),
                    }
                )
                row[1] += 1
            if rng.random() < 0.2:
                currency = rng.choice(["USD", "EUR", "JPY", "XXX"])
                value = round(rng.uniform(1, 300), 2)
                events.append(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "purchase",
                        "unit": unit,
                        "value": value,
                        "currency": currency,
                        "impression_id": impression,
                        "ts": when.isoformat(),
                    }
                )
                row[2] += 1
                row[3] += value * RATES.get(currency, 0.0)
        truth[unit] = (variant, language or "unknown", exposures[-1][3].date(), per_day)
    # noise that must not count: another experiment, and a unit that was never exposed
    events.append(
        {
            "id": uuid.uuid4().hex,
            "type": "impression",
            "unit": f"{key}-u0",
            "experiment": "other",
            "variant": "control",
            "query": "q",
            "ts": now.isoformat(),
        }
    )
    events.append(
        {
            "id": uuid.uuid4().hex,
            "type": "impression",
            "unit": "stranger",
            "experiment": key,
            "variant": "treatment",
            "query": "q",
            "ts": now.isoformat(),
        }
    )
    return events, exposures, truth


def _expected(truth, until: dt.date | None = None, language: str | None = None) -> dict[str, UnitAggregates]:
    per_variant: dict[str, list] = {}
    for variant, lang, exposed, per_day in truth.values():
        if language is not None and lang != language:
            continue
        days = [d for d in per_day if until is None or d <= until]
        entry = min(per_day) if per_day else exposed
        if until is not None and entry > until:
            continue
        imp = sum(per_day[d][0] for d in days)
        clk = sum(per_day[d][1] for d in days)
        pur = sum(per_day[d][2] for d in days)
        rev = sum(per_day[d][3] for d in days)
        per_variant.setdefault(variant, []).append((imp, clk, pur > 0, rev))
    return {variant: UnitAggregates.from_units(*zip(*rows, strict=True)) for variant, rows in per_variant.items()}


def _close(actual: UnitAggregates, expected: UnitAggregates) -> None:
    for name in UnitAggregates.__dataclass_fields__:
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-6), name


def test_sql_rollups_match_python_on_random_events(clean):
    now = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events, exposures, truth = _simulate(random.Random(5), "agg", 120, now)
    with clean.db.session() as session:
        for start in range(0, len(events), 500):
            ingest_events(session, parse_events({"events": events[start : start + 500]}, max_batch=500))
        for unit, variant, language, at in exposures:
            log_exposure(session, experiment="agg", unit_id=unit, variant=variant, language=language, at=at)
    with clean.db.session() as session:
        report = ab_report(session, "agg", RATES)
    totals = report.totals()
    expected = _expected(truth)
    assert set(totals) == set(expected) == {"control", "treatment"}
    for variant in expected:
        _close(totals[variant], expected[variant])
    for language in ("en", "de", "ja", "unknown"):
        by_language = _expected(truth, language=language)
        for variant, stats in by_language.items():
            _close(report.by_language[(language, variant)], stats)
    days = sorted(report.cumulative)
    assert days[-1] == now.date() and len(days) == 5
    for day in days:
        for variant, stats in _expected(truth, until=day).items():
            _close(report.cumulative[day][variant], stats)
    xxx = sum(1 for e in events if e.get("currency") == "XXX")
    assert report.unpriced_purchases == xxx


def test_reporting_currency_rates():
    rates = reporting_rates("EUR", parse_rates("JPY=0.0061"))
    assert rates["EUR"] == 1.0 and rates["JPY"] == 0.0061
    assert rates["USD"] == pytest.approx(1 / 1.04)
    with pytest.raises(ValueError):
        parse_rates("EURO=1")
    with pytest.raises(ValueError):
        reporting_rates("XYZ")


def test_interleaving_credit_counts_distinct_clicked_products_per_team(clean):
    now = dt.datetime.now(dt.UTC)
    items = [
        {"sku": "A1", "team": "A"},
        {"sku": "B1", "team": "B"},
        {"sku": "A2", "team": "A"},
        {"sku": "B2", "team": "B"},
        {"sku": "F1"},
    ]
    plan = {  # unit → impressions, each a list of clicked skus
        "u1": [["B1", "B1", "A1", "B2"], ["A1"]],  # B wins (2 v 1), A wins
        "u2": [["F1"], []],  # untagged fill item: tie; no click: tie
        "u3": [["B2"], ["B1"], ["A2", "B1"]],  # B, B, tie
    }
    events = []
    with clean.db.session() as session:
        for unit, impressions in plan.items():
            log_exposure(session, experiment="ilv", unit_id=unit, variant="interleaved", language="en")
            for clicks in impressions:
                impression = uuid.uuid4().hex
                events.append(
                    {
                        "id": impression,
                        "type": "impression",
                        "unit": unit,
                        "experiment": "ilv",
                        "variant": "interleaved",
                        "query": "q",
                        "items": items,
                        "ts": now.isoformat(),
                    }
                )
                events += [
                    {"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": sku, "impression_id": impression}
                    for sku in clicks
                ]
        ingest_events(session, parse_events({"events": events}))
    with clean.db.session() as session:
        report = interleaving_report(session, "ilv")
    total = report.total()
    assert (total.wins_a, total.wins_b, total.ties) == (1, 3, 3)
    units = report.unit_total()  # u1: 1-1 tie, u2: tie, u3: B
    assert (units.wins_a, units.wins_b, units.ties) == (0, 1, 2)
    assert report.exposed_units == 3
