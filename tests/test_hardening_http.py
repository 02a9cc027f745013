"""Hostile input through the real HTTP stack (waitress as ``shoprank serve`` runs it): unstorable text, wrong
JSON types, a CR/LF ``next`` after login, oversized chunked bodies, a raw-UTF-8 URL, and the information that
``/metrics``, ``/health`` and ``/ready`` give away in production. Each answer is a clear 4xx (JSON on API
paths), and nothing is written."""

from __future__ import annotations

import dataclasses
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from experiments.store.experiment_models import Exposure
from experiments.store.models import Event
from shoprank.users import create_user
from tests.conftest import free_port
from tests.experiment_support import reset_experiments
from tests.live_servers import LiveServer, csrf_token_in, sign_in
from tests.shop_support import create_key
from webapp.security import LOGIN_LIMITER

PASSWORD = "correct horse battery"


@pytest.fixture
def live(shop_services) -> Iterator[tuple[LiveServer, Any]]:
    from webapp import create_app

    app = create_app(services=shop_services)
    app.extensions[LOGIN_LIMITER].limit = 0
    with LiveServer(app) as server:
        yield server, shop_services


def _json_error(response: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert "Traceback" not in response.text
    if field is not None:
        assert field in error["message"] + " ".join(map(str, error.get("details") or [])), error
    return error


def _events_stored(services, ids: list[str]) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event).where(Event.event_id.in_(ids))) or 0)


def _sign_in(server: LiveServer, email: str) -> requests.Session:
    return sign_in(server.url, email, PASSWORD)[0]


@pytest.fixture
def merchandiser(shop_services) -> Iterator[str]:
    reset_experiments(shop_services)
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    with shop_services.db.session() as session:
        create_user(session, email, PASSWORD, "merchandiser")
    yield email
    reset_experiments(shop_services)


# --- 1. text that storage refuses ------------------------------------------------------------------------------

EVENT_TEXT_FIELDS = [
    ("unit", {"type": "click", "sku": "A"}),
    ("sku", {"type": "click"}),
    ("experiment", {"type": "click", "sku": "A"}),
    ("request_id", {"type": "click", "sku": "A"}),
    ("query", {"type": "impression", "items": ["A"]}),
    ("variant", {"type": "click", "sku": "A"}),
]


@pytest.mark.parametrize("bad", ["u\u0000x", "u\u0007x", "u\u001bx", "u\u007fx"], ids=["nul", "bel", "esc", "del"])
def test_unstorable_text_in_any_event_field_is_422_naming_it(live, bad):
    server, services = live
    http = requests.Session()
    ids = []
    for field, base in EVENT_TEXT_FIELDS:
        event = {"id": uuid.uuid4().hex, "unit": "hardening-unit", "sku": "A", **base, field: bad}
        ids.append(event["id"])
        response = http.post(f"{server.url}/api/events", json={"events": [event]}, timeout=30)
        _json_error(response, 422, f"events[0].{field}")
    item_id = uuid.uuid4().hex
    ids.append(item_id)
    impression = {"id": item_id, "type": "impression", "unit": "u", "query": "q", "items": ["A", {"sku": bad}]}
    response = http.post(f"{server.url}/api/events", json={"events": [impression]}, timeout=30)
    _json_error(response, 422, "events[0].items[1].sku")
    assert _events_stored(services, ids) == 0


def test_the_issue_reproducer_and_tabs_newlines(live):
    """The reproducer from the issue answers 422; tab and newline are text and stay storable."""
    server, services = live
    raw = b'{"events":[{"id":"repro-0002","type":"click","unit":"u\\u0000x","sku":"A"}]}'
    response = requests.post(
        f"{server.url}/api/events", data=raw, headers={"Content-Type": "application/json"}, timeout=30
    )
    _json_error(response, 422, "events[0].unit")
    event_id = uuid.uuid4().hex
    fine = {"id": event_id, "type": "impression", "unit": "u", "query": "line one\nline\ttwo", "items": ["A"]}
    assert requests.post(f"{server.url}/api/events", json={"events": [fine]}, timeout=30).status_code == 200
    assert _events_stored(services, [event_id]) == 1


def test_search_user_with_nul_is_400_and_logs_no_exposure(live):
    server, services = live
    response = requests.get(f"{server.url}/api/search", params={"q": "headphones", "user": "a\u0000b"}, timeout=30)
    _json_error(response, 400, "user")
    with services.db.session() as session:
        assert not session.scalar(select(func.count()).select_from(Exposure).where(Exposure.unit_id.like("a%b")))


def test_unstorable_path_parameters_and_dashboard_fields_are_400(live, merchandiser):
    server, services = live
    http = _sign_in(server, merchandiser)
    page = http.get(f"{server.url}/dashboard/experiments/%00", timeout=30)
    assert page.status_code == 400 and "path parameter &#39;key&#39; contains the control character U+0000" in page.text
    assert http.get(f"{server.url}/dashboard/experiments/x%00y/export.csv", timeout=30).status_code == 400
    form = {
        "key": "nul-test",
        "name": "A name",
        "hypothesis": "Better results",
        "variants-0-key": "control",
        "variants-0-name": "Control",
        "variants-1-key": "treatment",
        "variants-1-name": "Treatment",
        "variants-1-rerank": "on",
    }
    for field in ("name", "hypothesis", "variants-1-name", "key"):
        response = http.post(f"{server.url}/dashboard/experiments/new", data={**form, field: "x\u0000y"}, timeout=30)
        assert response.status_code == 400, (field, response.status_code)
        assert f"form field &#39;{field}&#39; contains the control character U+0000" in response.text
    assert http.get(f"{server.url}/dashboard/", timeout=30).status_code == 200  # the session survived
    anonymous = requests.Session()
    token = csrf_token_in(anonymous.get(f"{server.url}/dashboard/login", timeout=30).text)
    login = anonymous.post(
        f"{server.url}/dashboard/login",
        data={"email": "a\u0000@example.com", "password": "x", "csrf_token": token},
        timeout=30,
    )
    assert login.status_code == 400 and "&#39;email&#39; contains" in login.text  # not a database error
    created = http.post(f"{server.url}/dashboard/experiments/new", data=form, allow_redirects=False, timeout=30)
    assert created.status_code == 302  # the same form without the NUL is accepted


# --- 2. wrong JSON types -------------------------------------------------------------------------------------------

WRONG_TYPES = [["click"], {}, {"a": 1}, 1, 1.5, True, None]
VALID = {"reranked": [True], "position": [1], "quantity": [1], "value": [1, 1.5], "items": [["click"]]}


TYPED_FIELDS = ["type", "unit", "sku", "experiment", "variant", "request_id", "impression_id", "ts", "position"]
TYPED_FIELDS += ["quantity", "items", "query", "reranked", "currency", "value"]
#: The event type each field belongs to (add_to_cart has sku, position and quantity).
FIELD_EVENT_TYPE = {"items": "impression", "query": "impression", "reranked": "impression"}
FIELD_EVENT_TYPE |= {"currency": "purchase", "value": "purchase"}


@pytest.mark.parametrize("field", TYPED_FIELDS)
def test_wrong_json_types_are_422_naming_the_field(live, field):
    server, services = live
    http = requests.Session()
    ids = []
    for wrong in WRONG_TYPES:
        event = {"id": uuid.uuid4().hex, "type": FIELD_EVENT_TYPE.get(field, "add_to_cart"), "unit": "u", "sku": "A"}
        event.update({"query": "q", "value": 1, "currency": "EUR", field: wrong})
        ids.append(event["id"])
        response = http.post(f"{server.url}/api/events", json={"events": [event]}, timeout=30)
        if response.status_code == 200:  # null for an optional field, or a value of the right type
            assert wrong is None or any(type(v) is type(wrong) and v == wrong for v in VALID.get(field, [])), wrong
            continue
        _json_error(response, 422, f"events[0].{field}")
    assert _events_stored(services, ids) <= 1 + len(VALID.get(field, []))


# --- 3. CR/LF in the login's next -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/dashboard/%0d%0aX-Injected:1", "/dashboard/%0aX-Injected:%201", "/dashboard/%09x", "//evil.example"]
)
def test_login_next_with_crlf_redirects_safely(live, merchandiser, target):
    server, _ = live
    _, response = sign_in(server.url, merchandiser, PASSWORD, query=f"?next={target}")
    assert "X-Injected" not in response.headers
    assert response.headers["Location"].endswith("/dashboard/")


# --- 6. oversized chunked bodies -------------------------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"events": [{"id": "chunked-0001", "type": "impression", "unit": "u", "query": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}]}'


@pytest.mark.parametrize("kind", ["waitress", "werkzeug"])
def test_oversized_chunked_body_is_413(shop_services, kind):
    """werkzeug's server (like gunicorn) streams a chunked body; waitress buffers it: both must say 413."""
    from webapp import create_app

    app = create_app(shop_services.settings.replace(max_request_bytes=256 * 1024), services=shop_services)
    auth = {"Authorization": f"Bearer {create_key(shop_services, 'chunked')}"}
    with LiveServer(app, kind) as server:
        for path in ("/api/events", "/v2/rerank"):
            response = requests.post(
                f"{server.url}{path}",
                data=_chunks(1024 * 1024),  # a generator: requests sends Transfer-Encoding: chunked
                headers={"Content-Type": "application/json", **auth},
                timeout=60,
            )
            _json_error(response, 413)
        click = {"id": uuid.uuid4().hex, "type": "click", "unit": "u", "sku": "A"}
        small = requests.post(
            f"{server.url}/api/events",
            data=iter([b'{"events": ', json.dumps([click]).encode(), b"}"]),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert small.status_code == 200, small.text  # a small chunked body is still read whole


# --- 10. errors the server itself produces --------------------------------------------------------------------


def _raw_request(server: LiveServer, request_line: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


def test_raw_utf8_url_is_a_json_400_on_api_paths(live):
    """What README's old example sent: waitress cannot parse it; the API path still gets the JSON error shape."""
    server, _ = live
    status, headers, body = _raw_request(server, "GET /api/search?q=无线降噪耳机 HTTP/1.1".encode())
    assert status.startswith("HTTP/1.1 400") and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "--data-urlencode" in error["message"]
    status, headers, body = _raw_request(server, "GET /search?q=无线 HTTP/1.1".encode())
    assert status.startswith("HTTP/1.1 400") and headers["content-type"].startswith("text/plain")  # a page path
    encoded = requests.get(f"{server.url}/api/search", params={"q": "无线降噪耳机", "limit": 3}, timeout=60)
    assert encoded.status_code == 200 and encoded.json()["query"] == "无线降噪耳机"  # README's fixed example


# --- 7. what production shows to anonymous clients -----------------------------------------------------------------


def _production(shop_services, db=None, **settings):
    """The shared services as a production deployment would configure them (optionally on another database)."""
    changes = {"settings": shop_services.settings.replace(env="production", secret_key="s" * 43, **settings)}
    if db is not None:
        changes["db"] = db
    return dataclasses.replace(shop_services, **changes)


def test_production_closes_metrics_and_hides_probe_details(shop_services):
    from webapp import create_app

    with LiveServer(create_app(services=_production(shop_services))) as server:
        metrics = requests.get(f"{server.url}/metrics", timeout=30)
        assert _json_error(metrics, 403)["code"] == "metrics_token_required"
        assert "SHOPRANK_METRICS_TOKEN" in metrics.json()["error"]["message"]
        assert requests.get(f"{server.url}/health", timeout=30).json() == {"status": "ok"}
        ready = requests.get(f"{server.url}/ready", timeout=30)
        assert ready.status_code == 200 and set(ready.json()) == {"status", "checks"}
        assert all(set(check) <= {"ok", "error"} for check in ready.json()["checks"].values()), ready.json()
    services = _production(shop_services, metrics_token="ops-t0ken")
    bearer = {"Authorization": "Bearer ops-t0ken"}
    with LiveServer(create_app(services=services)) as server:
        assert requests.get(f"{server.url}/metrics", timeout=30).status_code == 401
        assert requests.get(f"{server.url}/metrics", headers=bearer, timeout=30).status_code == 200
        assert requests.get(f"{server.url}/health", timeout=30).json() == {"status": "ok"}
        health = requests.get(f"{server.url}/health", headers=bearer, timeout=30).json()
        assert health["scorer"]["kind"] == "bi-encoder-fallback"  # ops with the token see the details
        ready = requests.get(f"{server.url}/ready", headers=bearer, timeout=30).json()
        assert ready["checks"]["reranker"]["mode"] == "in-process" and "search" in ready


def test_ops_dashboard_session_sees_probe_details_in_production(shop_services):
    from webapp import create_app

    reset_experiments(shop_services)
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    with shop_services.db.session() as session:
        create_user(session, email, PASSWORD, "ops")
    app = create_app(services=_production(shop_services))
    app.extensions[LOGIN_LIMITER].limit = 0
    client = app.test_client()
    base = "https://localhost"  # production cookies are Secure
    token = csrf_token_in(client.get("/dashboard/login", base_url=base).text)
    assert client.get("/health", base_url=base).get_json() == {"status": "ok"}
    signed_in = client.post(
        "/dashboard/login", data={"email": email, "password": PASSWORD, "csrf_token": token}, base_url=base
    )
    assert signed_in.status_code == 302
    assert "scorer" in client.get("/health", base_url=base).get_json()
    reset_experiments(shop_services)


def test_ready_returns_a_code_not_the_driver_error(shop_services):
    from shoprank.db import Database
    from webapp import create_app

    dead_port = free_port()
    url = f"postgresql+psycopg://secret_role:pw@127.0.0.1:{dead_port}/secret_database"
    for services in (
        _production(shop_services, db=Database(url)),
        dataclasses.replace(shop_services, db=Database(url)),
    ):
        with LiveServer(create_app(services=services)) as server:
            ready = requests.get(f"{server.url}/ready", headers={"Authorization": "Bearer x"}, timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == {
            "ok": False,
            "error": "database_unreachable",
        }
        for secret in ("secret_role", "secret_database", str(dead_port), "127.0.0.1", "psycopg"):
            assert secret not in ready.text, secret
        services.db.dispose()


def test_ready_names_an_unreachable_redis_by_code_and_is_not_ok(shop_services):
    """Issue 22 item 9: the worker registry's raw Redis error (host and port) was shown to anyone, with
    ``"ok": true`` beside it. Now a code, ``ok: false``, and the details only in the log."""
    from webapp import create_app
    from workers.client import CeleryDispatcher
    from workers.testing import isolated_environment, settings_for

    dead_port = free_port()
    settings = settings_for(isolated_environment(f"redis://127.0.0.1:{dead_port}/0"))
    dispatcher = CeleryDispatcher.from_settings(settings)
    services = _production(shop_services)
    services = dataclasses.replace(services, dispatcher=dispatcher)
    try:
        response = create_app(services=services).test_client().get("/ready")
    finally:
        dispatcher.close()
    body = response.json
    assert body["checks"]["reranker"] == {"ok": False, "error": "worker_registry_unreachable"}, body
    for secret in (str(dead_port), "127.0.0.1", "Error", "Connection"):
        assert secret not in response.get_data(as_text=True), secret
