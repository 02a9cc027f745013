"""JSON API against SQLite and PostgreSQL: search, events (idempotent), health, bad input as clear 4xx JSON."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from experiments.manage import create_experiment
from experiments.store import Event, ImpressionItem
from experiments.store.exposures import log_exposure
from tests.experiment_support import ab_spec, reset_experiments


def test_search_returns_ranked_products_with_scores_and_stage_timings(client):
    response = client.get("/api/search?q=wireless%20headphones&limit=5&lang=en&user=u-42")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "wireless headphones" and body["language"] == "en"
    assert body["reranked"] is True and body["rerank_status"] == "ok"
    assert body["variant"] is None and body["experiment"] is None
    assert body["scorer"]["kind"] == "bi-encoder-fallback"
    assert len(body["results"]) == 5 and [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    first = body["results"][0]
    for field in (
        "sku",
        "title",
        "price",
        "currency",
        "price_display",
        "language",
        "category",
        "score",
        "rerank_score",
    ):
        assert field in first
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert {"first_stage", "first_stage_dense", "first_stage_lexical", "rerank", "total"} <= set(body["timings_ms"])
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_request_id_is_taken_from_the_client(client):
    response = client.get("/api/search?q=laptop", headers={"X-Request-ID": "trace-abc-123"})
    assert response.headers["X-Request-ID"] == "trace-abc-123"
    assert response.get_json()["request_id"] == "trace-abc-123"
    weird = client.get("/api/search?q=laptop", headers={"X-Request-ID": "<script>" + "x" * 100})
    assert weird.headers["X-Request-ID"] != "<script>" + "x" * 100 and len(weird.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("query_string", "code"),
    [
        ("q=", "empty_query"),
        ("q=%20%20%09", "empty_query"),
        ("", "empty_query"),
        ("q=" + "a" * 1001, "query_too_long"),
        ("q=shoes&limit=-1", "invalid_limit"),
        ("q=shoes&limit=0", "invalid_limit"),
        ("q=shoes&limit=abc", "invalid_limit"),
        ("q=shoes&limit=100000", "invalid_limit"),
        ("q=shoes&lang=xx", "unknown_language"),
        ("q=shoes&lang=english", "unknown_language"),
    ],
)
def test_bad_search_input_is_a_400_with_a_message(client, query_string, code):
    response = client.get("/api/search?" + query_string)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code and len(error["message"]) > 10


def _impression(impression_id: str, unit: str = "visitor-1") -> dict:
    return {
        "id": impression_id,
        "type": "impression",
        "unit": unit,
        "query": "无线降噪耳机",
        "language": "zh",
        "reranked": True,
        "experiment": "ranker",
        "variant": "treatment",
        "items": ["SKU-1", "SKU-2", {"sku": "SKU-3", "position": 3, "team": "B"}],
    }


def _count(services, model, **where) -> int:
    with services.db.session() as session:
        statement = select(func.count()).select_from(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return session.scalar(statement)


def test_events_batch_is_stored_once_even_when_retried(client, shop_services):
    reset_experiments(shop_services)
    with shop_services.db.session() as session:  # the events' experiment exists and served visitor-1 treatment
        create_experiment(session, ab_spec("ranker"), "tests")
        log_exposure(session, experiment="ranker", unit_id="visitor-1", variant="treatment")
    impression_id = str(uuid.uuid4())
    click_id, cart_id, purchase_id = (str(uuid.uuid4()) for _ in range(3))
    batch = {
        "events": [
            _impression(impression_id),
            {
                "id": click_id,
                "type": "click",
                "unit": "visitor-1",
                "sku": "SKU-2",
                "position": 2,
                "impression_id": impression_id,
                "variant": "tampered",
            },
            {"id": cart_id, "type": "add_to_cart", "unit": "visitor-1", "sku": "SKU-2", "impression_id": impression_id},
            {
                "id": purchase_id,
                "type": "purchase",
                "unit": "visitor-1",
                "sku": "SKU-2",
                "value": 399.0,
                "currency": "USD",
                "ts": "2025-03-01T10:00:00Z",
            },
        ]
    }
    first = client.post("/api/events", json=batch)
    assert first.status_code == 200 and first.get_json() == {
        "received": 4, "stored": 4, "duplicates": 0, "waiting_for_impression": 0, "attached": 0, "ignored": []
    }  # fmt: skip
    retry = client.post("/api/events", json=batch)
    assert retry.get_json() == {
        "received": 4, "stored": 0, "duplicates": 4, "waiting_for_impression": 0, "attached": 0, "ignored": []
    }  # fmt: skip
    assert _count(shop_services, Event, unit_id="visitor-1", impression_id=impression_id) == 2
    assert _count(shop_services, ImpressionItem, impression_id=impression_id) == 3
    with shop_services.db.session() as session:
        click = session.get(Event, click_id)
        purchase = session.get(Event, purchase_id)
        team = session.get(ImpressionItem, (impression_id, 3)).team
    assert (click.experiment, click.variant) == ("ranker", "treatment")  # from the impression, not the page
    reset_experiments(shop_services)
    assert str(purchase.order_value) == "399.00" and purchase.currency == "USD" and team == "B"


def test_a_batch_with_one_bad_event_writes_nothing(client, shop_services):
    good = str(uuid.uuid4())
    response = client.post(
        "/api/events",
        json={"events": [_impression(good), {"id": str(uuid.uuid4()), "type": "purchase", "unit": "v", "value": -3}]},
    )
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert any("events[1].value" in d for d in details) and any("events[1].currency" in d for d in details)
    assert _count(shop_services, Event, event_id=good) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_body"),
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe{}", 400, "invalid_encoding"),
        (b'{"events": ["\\ud800"]}', 400, "invalid_encoding"),
        (b'{"events": NaN}', 400, "invalid_json"),
        (b'{"events": []}', 422, "invalid_events"),
        (b'{"events": [{"id": "short", "type": "click"}]}', 422, "invalid_events"),
        (b'{"events": [{"id": "0123456789", "type": "view", "unit": "u"}]}', 422, "invalid_events"),
        (b"[1, 2]", 422, "invalid_events"),
    ],
)
def test_bad_event_bodies_are_clear_4xx(client, body, status, code):
    response = client.post("/api/events", data=body, content_type="application/json")
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


def test_too_many_events_is_413(client, shop_services):
    limit = shop_services.settings.events_max_batch
    events = [{"id": f"bulk-{i:08d}", "type": "click", "unit": "u", "sku": "A"} for i in range(limit + 1)]
    response = client.post("/api/events", json={"events": events})
    assert response.status_code == 413


def test_beacon_events_take_the_visitor_cookie_as_unit(client, shop_services):
    client.get("/")  # the shop sets the visitor cookie
    visitor = client.get_cookie("sr_vid").value
    event_id = str(uuid.uuid4())
    response = client.post(
        "/api/events",
        data=json.dumps({"events": [{"id": event_id, "type": "click", "sku": "X", "position": 1}]}),
        content_type="text/plain;charset=UTF-8",  # what sendBeacon sends for a string body
    )
    assert response.status_code == 200
    with shop_services.db.session() as session:
        assert session.get(Event, event_id).unit_id == visitor


def test_health_and_ready_report_the_active_scorer(client):
    health = client.get("/health").get_json()
    assert health["status"] == "ok" and health["scorer"]["kind"] == "bi-encoder-fallback" and health["scorer_fallback"]
    response = client.get("/ready")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["catalog"]["products"] > 0
    assert body["checks"]["reranker"]["mode"] == "in-process" and body["scorer_fallback"] is True


def test_unknown_json_routes_and_methods_are_json_errors(client):
    assert client.get("/api/nope").get_json()["error"]["code"] == "not_found"
    response = client.delete("/api/search")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
