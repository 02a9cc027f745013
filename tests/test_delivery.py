"""Treatment delivery check and guardrails (issue 15), on SQLite and PostgreSQL.

The delivery test runs the real search flow of an app whose configured cross-encoder is missing: the deployment
falls back to the e5 bi-encoder (as ``make demo`` does offline), and a variant naming a model no worker has
keeps first-stage order. Simulated shoppers search through ``/api/search`` and send their impressions as a
client does; the report must say which variant was not served as configured, with the numbers.
"""

from __future__ import annotations

import random
import re
import uuid
from types import SimpleNamespace

import pytest

from experiments.manage import VariantSpec, create_experiment, get_experiment, start_experiment
from experiments.report import build_report
from experiments.store import ingest_events, parse_events
from experiments.store.exposures import log_exposure
from shopctl.simulator import FlaskTransport, SimulationConfig, Simulator
from shoprank.users import create_user
from tests.experiment_support import ab_spec, reset_experiments, running
from tests.shop_support import settings_for_tests
from tests.test_dashboard import PASSWORD, _login


@pytest.fixture
def missing_cross_encoder_app(shop_db_url, tmp_path):
    """A full app (real dispatcher from settings) whose cross-encoder weights are not on the machine."""
    from webapp import create_app
    from webapp.services import build_services

    settings = settings_for_tests(shop_db_url, reranker_model=str(tmp_path / "no-such-cross-encoder"))
    services = build_services(settings)
    services.index.refresh()
    reset_experiments(services)
    with services.db.session() as session:
        create_user(session, "merch@example.com", PASSWORD, "merchandiser")
    yield create_app(services=services), services
    reset_experiments(services)
    services.close()


def _report(services, key):
    with services.db.session() as session:
        experiment = get_experiment(session, key)
        return build_report(session, experiment, rates={"USD": 1.0, "EUR": 1.08})


def test_delivery_banner_when_the_treatments_cross_encoder_is_missing(missing_cross_encoder_app):
    app, services = missing_cross_encoder_app
    assert services.scorer_info()["kind"] == "bi-encoder-fallback"  # the real load_scorer fell back
    key = f"deliv-{uuid.uuid4().hex[:8]}"
    variants = [
        VariantSpec("control", rerank=False),
        VariantSpec("cross", rerank=True, first_stage_top_k=30),
        VariantSpec("named", rerank=True, model="BAAI/bge-reranker-v2-m3"),
    ]
    running(services, ab_spec(key, variants=variants))
    config = SimulationConfig(users=45, days=0, seed=15, results_per_page=5)
    Simulator(FlaskTransport(app), config).run()

    report = _report(services, key)
    delivery = {d["variant"]: d for d in report.delivery}
    assert not delivery["control"]["flagged"] and delivery["control"]["as_configured_share"] == 1.0
    cross = delivery["cross"]
    assert cross["flagged"] and cross["as_configured_share"] == 0.0 and cross["not_reported"] == 0
    assert [s["kind"] for s in cross["scorers"]] == ["bi-encoder-fallback"] and cross["scorers"][0]["share"] == 1.0
    assert cross["depth"]["max"] == 30  # the configured top-K was scored, by the wrong scorer
    named = delivery["named"]
    assert named["flagged"] and [f["reason"] for f in named["first_stage"]] == ["unavailable"]
    assert "bi-encoder-fallback" in cross["problems"][0] and "kept first-stage order" in named["problems"][0]

    client = app.test_client()
    _login(client)
    html = client.get(f"/dashboard/experiments/{key}").get_data(as_text=True)
    banners = re.findall(r'class="banner srm delivery-banner" role="alert" data-variant="(\w+)"', html)
    assert banners == ["cross", "named"]
    assert "Treatment not delivered as configured: cross." in html and "0% of" in html
    assert 'id="delivery-table"' in html
    listing = client.get("/dashboard/").get_data(as_text=True)
    assert ">Delivery</span>" in listing


def _impression(unit, key, variant, *, ms, results, status="ok", kind="cross-encoder", **extra):
    event = {
        "id": uuid.uuid4().hex,
        "type": "impression",
        "unit": unit,
        "experiment": key,
        "variant": variant,
        "query": "q",
        "items": [f"sku-{i}" for i in range(results)],
        "rerank_status": status,
        "rerank_depth": 50,
        "search_ms": ms,
        "scorer": {"kind": kind, "model_id": "BAAI/bge-reranker-v2-m3"},
    }
    event.update(extra)
    return event


@pytest.fixture(params=["sqlite", "postgresql"])
def event_db(request, tmp_path):
    """A migrated, empty database (no catalog: these tests only need experiments and events)."""
    from shoprank import migrate
    from shoprank.db import Database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue("postgres_factory").create()
    migrate.upgrade(url)
    db = Database(url)
    yield SimpleNamespace(db=db)
    db.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("postgres_factory").drop(url)


def test_guardrails_flag_a_slower_emptier_poorer_treatment(event_db):
    shop_services = event_db
    key = f"guard-{uuid.uuid4().hex[:8]}"
    with shop_services.db.session() as session:
        start_experiment(session, create_experiment(session, ab_spec(key), "tests"), "tests")
    events = []
    rng = random.Random(15)
    with shop_services.db.session() as session:
        for i in range(240):
            variant = "control" if i % 2 == 0 else "treatment"
            unit = f"{key}-u{i}"
            log_exposure(session, experiment=key, unit_id=unit, variant=variant)
            for j in range(3):
                slow = variant == "treatment" and j > 0
                empty = rng.random() < (0.3 if variant == "treatment" else 0.03)
                impression = _impression(
                    unit,
                    key,
                    variant,
                    ms=400.0 + 10 * j + i % 7 if slow else 80.0 + (i * 7 + j) % 40,
                    results=0 if empty else 10,
                )
                events.append(impression)
                events.append(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "click",
                        "unit": unit,
                        "sku": "sku-1",
                        "impression_id": impression["id"],
                    }
                )
            if variant == "control" or i % 9 == 1:
                events.append(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "purchase",
                        "unit": unit,
                        "value": 40 + i % 5,
                        "currency": "USD",
                        "impression_id": events[-1]["impression_id"],
                    }
                )
        events.append(
            {
                "id": uuid.uuid4().hex,
                "type": "impression",
                "unit": f"{key}-u0",
                "query": "old client",
                "experiment": key,
                "variant": "control",
            }
        )  # no delivery fields: not reported, not a miss
    for start in range(0, len(events), 500):
        with shop_services.db.session() as session:
            ingest_events(session, parse_events(events[start : start + 500]))

    report = _report(shop_services, key)
    flagged = {(g["metric"], g["variant"]) for g in report.guardrail_flags}
    assert flagged == {
        ("zero_result_rate", "treatment"),
        ("slow_search_share", "treatment"),
        ("revenue_per_unit", "treatment"),
    }
    latency = report.quality["latency"]
    assert latency["control"]["p95"] < 120 <= 400 <= latency["treatment"]["p95"]
    assert report.headline()["guardrails"]
    quality = {v["key"]: v for v in report.quality["analysis"]["variants"]}
    assert 0.1 <= quality["control"]["metrics"]["product_ctr"]["value"] < 0.11  # 1 click per page of (mostly) 10
    assert 0.2 < quality["treatment"]["metrics"]["zero_result_rate"]["value"] < 0.4
    control = {d["variant"]: d for d in report.delivery}["control"]
    assert control["not_reported"] == 1 and control["flagged"]  # control says "no rerank", impressions say "ok"
    treatment = {d["variant"]: d for d in report.delivery}["treatment"]
    assert not treatment["flagged"] and treatment["as_configured_share"] == 1.0


def test_interleaving_has_a_delivery_check(event_db):
    """Issue 23 item 3: team B configured as the cross-encoder but served by the fallback is flagged on the
    interleaving report (banner, list chip, ship doubts), not shown as a clean preference."""
    from experiments.report import Report
    from webapp.dashboard.views import reasons_to_doubt

    key = f"il-{uuid.uuid4().hex[:8]}"
    spec = ab_spec(key, kind="interleaving")
    with event_db.db.session() as session:
        start_experiment(session, create_experiment(session, spec, "tests"), "tests")
    events = []
    with event_db.db.session() as session:
        for i in range(30):
            unit = f"{key}-u{i}"
            log_exposure(session, experiment=key, unit_id=unit, variant="interleaved")
            impression = _impression(unit, key, "interleaved", ms=90.0, results=4, kind="bi-encoder-fallback")
            impression["items"] = [
                {"sku": f"sku-{p}", "position": p, "team": "B" if p % 2 else "A"} for p in range(1, 5)
            ]
            events.append(impression)
            events.append(
                {"id": uuid.uuid4().hex, "type": "click", "unit": unit, "sku": "sku-1",
                 "position": 1, "impression_id": impression["id"]}
            )  # fmt: skip
    with event_db.db.session() as session:
        ingest_events(session, parse_events(events))
    report: Report = _report(event_db, key)
    assert report.interleaving is not None and report.interleaving["total"]["winner"] == "B"
    (problem,) = report.delivery_problems
    assert problem["variant"] == "interleaved" and "bi-encoder-fallback" in problem["problems"][0]
    headline = report.headline()
    assert headline["delivery"] == ["interleaved"]
    assert any("not delivered as configured" in reason for reason in reasons_to_doubt(report, "treatment"))


def test_ops_page_says_every_search_runs_on_the_fallback(missing_cross_encoder_app):
    """Issue 23 item 11: the ops page was green while the fallback scorer served every search, and a merchandiser
    login got a 403 in the shop's layout."""
    app, services = missing_cross_encoder_app
    with services.db.session() as session:
        create_user(session, "ops@example.com", PASSWORD, "ops")
    client = app.test_client()
    _login(client, "ops@example.com")
    page = client.get("/dashboard/ops").get_data(as_text=True)
    assert 'id="fallback-scorer-banner"' in page and "bi-encoder-fallback" in page
    merchandiser = app.test_client()
    _login(merchandiser)
    refused = merchandiser.get("/dashboard/ops")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 403 and 'id="dashboard-error"' in html and "needs a ops or admin login" in html


def test_demo_prints_an_ops_login_that_opens_the_ops_page(event_db):
    from shopctl.demo import DEMO_OPS_EMAIL, ensure_demo
    from shoprank.users import authenticate

    setup = ensure_demo(event_db.db)
    assert setup.ops_email == DEMO_OPS_EMAIL and setup.ops_password and setup.ops_password != setup.password
    with event_db.db.session() as session:
        user = authenticate(session, DEMO_OPS_EMAIL, setup.ops_password)
        assert user is not None and user.has_role("ops")
