"""Experiments in the search flow (SQLite and PostgreSQL): sticky variants, the variant's config ranks the search,
exposure once per unit, stopped → control, targeting, interleaving teams credited from the stored impression."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from experiments.manage import VariantSpec, get_experiment, stop_experiment
from experiments.store.aggregate import interleaving_report
from experiments.store.experiment_models import Exposure
from experiments.store.exposures import log_exposure
from tests.experiment_support import ab_spec, follow_up_event, impression_event, reset_experiments, running


@pytest.fixture
def clean(shop_services):
    reset_experiments(shop_services)
    yield shop_services
    reset_experiments(shop_services)


def _exposures(services, key: str) -> list[Exposure]:
    with services.db.session() as session:
        return list(session.scalars(select(Exposure).where(Exposure.experiment == key)))


def _search(client, user: str, q: str = "wireless headphones", **params) -> dict:
    response = client.get("/api/search", query_string={"q": q, "user": user, "limit": 5, **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_variant_is_sticky_drives_ranking_and_is_exposed_once(clean, client):
    running(clean, ab_spec("sticky"))
    seen: dict[str, str] = {}
    for i in range(16):
        user = f"user-{i}"
        bodies = [_search(client, user) for _ in range(3)]
        variants = {b["variant"] for b in bodies}
        assert len(variants) == 1 and bodies[0]["experiment"] == "sticky"
        seen[user] = variants.pop()
        expected_status = "disabled" if seen[user] == "control" else "ok"
        assert {b["rerank_status"] for b in bodies} == {expected_status}
    assert set(seen.values()) == {"control", "treatment"}
    exposures = _exposures(clean, "sticky")
    assert sorted(e.unit_id for e in exposures) == sorted(seen)
    assert {e.unit_id: e.variant for e in exposures} == seen
    assert all(e.surface == "api" for e in exposures)


def test_exposure_insert_is_once_per_unit_even_when_raced(clean):
    with clean.db.session() as session:
        assert log_exposure(session, experiment="race", unit_id="u1", variant="control", language="de")
        assert not log_exposure(session, experiment="race", unit_id="u1", variant="treatment", language="fr")
    (only,) = _exposures(clean, "race")
    assert (only.variant, only.language) == ("control", "de")  # the first exposure stays


def test_searches_do_not_query_experiment_definitions(clean, client):
    running(clean, ab_spec("snapshot"))
    _search(client, "warm-user")  # loads nothing new: the snapshot was refreshed at start; exposure written
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(clean.db.engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            _search(client, "warm-user")
    finally:
        event.remove(clean.db.engine, "before_cursor_execute", record)
    assert not [s for s in statements if "experiment" in s.lower()], statements


def test_shop_pages_use_the_visitor_cookie(clean, client):
    running(clean, ab_spec("pages"))
    page = client.get("/search?q=laptop&lang=en")
    visitor = client.get_cookie("sr_vid").value
    html = page.get_data(as_text=True)
    (exposure,) = _exposures(clean, "pages")
    assert exposure.unit_id == visitor and exposure.surface == "shop" and exposure.language == "en"
    assert 'data-experiment="pages"' in html and f'data-variant="{exposure.variant}"' in html


class _RecordingDispatcher:
    """The live dispatcher, keeping every rerank job it was given."""

    def __init__(self, inner) -> None:
        self.inner, self.jobs = inner, []

    def dispatch(self, job, deadline_seconds):
        self.jobs.append(job)
        return self.inner.dispatch(job, deadline_seconds)

    def describe(self):
        return self.inner.describe()

    def warm(self, query, passages, model=None):
        return self.inner.warm(query, passages, model)


def test_variant_rerank_max_depth_caps_the_rerank_job(clean, client, monkeypatch):
    recorder = _RecordingDispatcher(clean.search.dispatcher)
    monkeypatch.setattr(clean.search, "dispatcher", recorder)
    variants = [VariantSpec("control", rerank=True), VariantSpec("shallow", rerank=True, rerank_max_depth=20)]
    running(clean, ab_spec("depth-cap", variants=variants))
    served: dict[str, list[int]] = {"control": [], "shallow": []}
    for i in range(12):
        before = len(recorder.jobs)
        body = _search(client, f"depth-{i}")
        # this search's job (others may come from background work, such as the relevance floor's calibration)
        (job,) = [j for j in recorder.jobs[before:] if j.query == "wireless headphones" and j.min_depth is not None]
        assert body["candidates"] > 20  # else every depth would be at most 20 anyway
        served[body["variant"]].append(len(job.passages))
        assert 0 < body["rerank_depth"] <= len(job.passages)
    assert served["shallow"] and served["control"]
    assert set(served["shallow"]) == {20}
    assert min(served["control"]) > 20  # control keeps the deployment's depth


def test_stopped_experiment_serves_control_without_exposure(clean, client):
    running(clean, ab_spec("stopme", variants=[VariantSpec("control", rerank=False), VariantSpec("t")]))
    with clean.db.session() as session:
        stop_experiment(session, get_experiment(session, "stopme"), "tests")
    clean.search.resolver.invalidate()
    for i in range(8):
        body = _search(client, f"after-stop-{i}")
        assert body["experiment"] is None and body["variant"] is None
        assert body["rerank_status"] == "disabled"  # control's config, for everyone it reached
    assert _exposures(clean, "stopme") == []


def test_targeting_by_language_and_market(clean, client):
    running(clean, ab_spec("de-only", languages=["de"], markets=["CH"]))
    assert _search(client, "t-1", lang="en", market="CH")["experiment"] is None
    assert _search(client, "t-2", lang="de", market="DE")["experiment"] is None
    assert _search(client, "t-3", lang="de", market="ch")["experiment"] == "de-only"
    bad = client.get("/api/search", query_string={"q": "x", "market": "Germany"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_market"
    (exposure,) = _exposures(clean, "de-only")
    assert (exposure.unit_id, exposure.language, exposure.market) == ("t-3", "de", "CH")


def test_interleaving_tags_teams_and_credits_clicks_via_the_stored_impression(clean, client):
    running(
        clean,
        ab_spec(
            "il",
            kind="interleaving",
            variants=[VariantSpec("first-stage", rerank=False), VariantSpec("reranked", rerank=True)],
        ),
    )
    body = _search(client, "shopper-1", q="noise cancelling headphones", lang="en")
    assert body["experiment"] == "il" and body["variant"] == "interleaved" and body["interleaved"] is True
    teams = [r["team"] for r in body["results"]]
    assert set(teams) <= {"A", "B", None} and {"A", "B"} <= set(teams)
    assert abs(teams.count("A") - teams.count("B")) <= 1
    again = _search(client, "shopper-1", q="noise cancelling headphones", lang="en")
    assert [r["sku"] for r in again["results"]] == [r["sku"] for r in body["results"]]

    impression = body["impression_id"]
    b_items = [r for r in body["results"] if r["team"] == "B"]
    events = [
        impression_event(body, "shopper-1"),
        *(
            follow_up_event("click", "shopper-1", impression, sku=b_items[0]["sku"])
            for _ in range(2)  # the same product twice: credited once
        ),
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    with clean.db.session() as session:
        report = interleaving_report(session, "il")
        exposed = session.scalar(select(func.count()).select_from(Exposure).where(Exposure.experiment == "il"))
    assert exposed == 1 and report.exposed_units == 1
    total = report.total()
    assert (total.wins_a, total.wins_b, total.ties) == (0, 1, 0)
