"""Operations: Prometheus metrics after real searches/events, JSON logs with request ids (followed into a real
rerank worker process), the ops page's roles, and what it shows with a live worker on real Redis."""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from reranking.dispatch import RerankJob, RerankUnavailable
from shoprank.config import Settings
from shoprank.observability.logs import bound_request_id, configure_logging
from shoprank.observability.window import SearchRecord, SearchWindow, percentile
from shoprank.users import create_user
from tests.conftest import free_port
from tests.shop_support import build_test_services, create_key, prepare_shop_database

PASSWORD = "correct horse battery"


def _families(client) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.get_data(as_text=True))}


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _impression() -> dict:
    return {"id": str(uuid.uuid4()), "type": "impression", "unit": "metrics-visitor", "query": "kopfhörer",
            "language": "de", "reranked": True, "items": ["SKU-1", "SKU-2"]}  # fmt: skip


def test_metrics_expose_search_rerank_event_and_http_families(client, shop_services):
    searches_before = _value("shoprank_search_latency_seconds_count", stage="total")
    http_before = _value("shoprank_http_responses_total", method="GET", endpoint="api.search", status="200")
    bad_before = _value("shoprank_http_responses_total", method="GET", endpoint="api.search", status="400")
    stored_before = _value("shoprank_events_ingested_total", result="stored")
    rejected_before = _value("shoprank_events_rejected_total", reason="invalid")

    assert client.get("/api/search?q=wireless+headphones&limit=5").status_code == 200
    assert client.get("/api/search?q=shoes&limit=0").status_code == 400
    assert client.post("/api/events", json={"events": [_impression()]}).status_code == 200
    assert client.post("/api/events", json={"events": [{"type": "nope"}]}).status_code == 422
    key = create_key(shop_services, "metrics-test")
    reranked = client.post(
        "/v2/rerank",
        json={"query": "red shoes", "documents": ["red running shoes", "blue kettle"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert reranked.status_code == 200

    families = _families(client)
    for name in (
        "shoprank_search_latency_seconds",
        "shoprank_searches",
        "shoprank_rerank_batch_pairs",
        "shoprank_rerank_batch_tokens",
        "shoprank_score_cache_hits",
        "shoprank_score_cache_misses",
        "shoprank_events_ingested",
        "shoprank_events_rejected",
        "shoprank_http_responses",
    ):
        assert name in families, f"{name} missing from /metrics"
    stages = {s.labels["stage"] for s in families["shoprank_search_latency_seconds"] if s.name.endswith("_count")}
    assert {"retrieval", "rerank", "total"} <= stages
    pairs = [s for s in families["shoprank_rerank_batch_pairs"] if s.name.endswith("_count")]
    assert any(s.labels["where"] == "web" and s.value >= 1 for s in pairs)
    misses = _value("shoprank_score_cache_misses_total", where="search") + _value(
        "shoprank_score_cache_hits_total", where="search"
    )
    assert misses >= 5  # the search reranked its candidates: every pair was a hit or a miss

    assert _value("shoprank_search_latency_seconds_count", stage="total") == searches_before + 1
    assert _value("shoprank_http_responses_total", method="GET", endpoint="api.search", status="200") == (
        http_before + 1
    )
    assert _value("shoprank_http_responses_total", method="GET", endpoint="api.search", status="400") == bad_before + 1
    assert _value("shoprank_events_ingested_total", result="stored") == stored_before + 1
    assert _value("shoprank_events_rejected_total", reason="invalid") == rejected_before + 1
    # No Redis in this app: the scrape-time queue/worker collector is not installed.
    assert "shoprank_queue_depth" not in families


def test_metrics_token_guards_the_endpoint(shop_services):
    from webapp import create_app
    from webapp.services import AppServices

    guarded = AppServices(**{**shop_services.__dict__, "settings": shop_services.settings.replace(metrics_token="s3")})
    client = create_app(services=guarded).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3"}).status_code == 200


class _NoWorkers:
    """A dispatcher with nothing behind it: every job is unavailable (the search must fall back)."""

    def dispatch(self, job: RerankJob, deadline_seconds: float):
        raise RerankUnavailable("no live rerank worker (test)")

    def describe(self) -> dict:
        return {"mode": "celery", "workers": []}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging(Settings.from_env({}, log_format="json", log_level="INFO"), stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.slow  # imports and embeds the demo catalog into a database of its own
def test_json_logs_carry_the_http_request_id_and_fallbacks_are_counted(tmp_path, json_log):
    from webapp import create_app

    url = f"sqlite:///{tmp_path / 'fallback.db'}"
    prepare_shop_database(url)
    services = build_test_services(url, dispatcher=_NoWorkers())
    try:
        before = _value("shoprank_rerank_fallbacks_total", reason="unavailable")
        client = create_app(services=services).test_client()
        response = client.get("/api/search?q=headphones", headers={"X-Request-ID": "trace-json-42"})
        assert response.status_code == 200 and response.get_json()["rerank_status"] == "unavailable"
        assert _value("shoprank_rerank_fallbacks_total", reason="unavailable") == before + 1
    finally:
        services.close()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    for entry in lines:
        assert {"ts", "level", "logger", "message", "request_id"} <= set(entry)
    fallback = [e for e in lines if e["logger"] == "search.service" and "fallback" in e["message"]]
    assert fallback and fallback[0]["request_id"] == "trace-json-42" and fallback[0]["level"] == "WARNING"
    logging.getLogger("outside").warning("no request here")
    assert json.loads(json_log.getvalue().splitlines()[-1])["request_id"] == "-"


def test_task_side_binding_uses_only_well_formed_ids(json_log):
    from workers.tasks import job_request_id

    assert job_request_id({"job": {"request_id": "abc-123"}}) == "abc-123"
    assert job_request_id({"job": {"request_id": "bad id\nforged"}}) is None
    assert job_request_id({"job": "not an object"}) is None
    with bound_request_id("abc-123"):
        logging.getLogger("workers.tasks").info("inside")
    assert json.loads(json_log.getvalue().splitlines()[-1])["request_id"] == "abc-123"


def test_search_window_percentiles_rates_and_redis_sharing(redis_url, unique_prefix):
    import redis

    shared_a = SearchWindow(50, redis_url, unique_prefix)
    shared_b = SearchWindow(50, redis_url, unique_prefix)  # another web process
    try:
        for n in range(1, 101):  # more than the window: the oldest 50 are trimmed
            status = "timeout" if n % 10 == 0 else "ok"
            shared_a.add(SearchRecord(1000.0 + n, n / 10, float(n), float(n) + 5, status, cache_hits=1, cache_misses=3))
        summary = shared_b.summary(now=1200.0)
        assert summary["searches"] == 50 and summary["shared"]
        assert summary["latency_ms"]["rerank"]["p50"] == percentile([float(n) for n in range(51, 101)], 50) == 75.0
        assert summary["latency_ms"]["total"]["p99"] == 105.0
        assert summary["fallback_rate"] == pytest.approx(5 / 50) and summary["fallbacks"] == {"timeout": 5}
        assert summary["cache_hit_rate"] == pytest.approx(0.25)
    finally:
        redis.Redis.from_url(redis_url).delete(f"{unique_prefix}shoprank:ops:searches")
    local = SearchWindow(10)
    assert local.summary()["searches"] == 0 and local.summary()["fallback_rate"] is None


# --- the ops page ----------------------------------------------------------------------------------------------------


def _login(client, email: str) -> None:
    html = client.get("/dashboard/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = client.post("/dashboard/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302


@pytest.fixture
def staff(shop_services) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    emails = {role: f"{role}-{suffix}@example.com" for role in ("merchandiser", "ops", "admin")}
    with shop_services.db.session() as session:
        for role, email in emails.items():
            create_user(session, email, PASSWORD, role)
    return emails


def test_ops_page_roles_and_content(shop_app, staff):
    anonymous = shop_app.test_client()
    assert anonymous.get("/dashboard/ops").status_code == 302  # to the login page

    merch = shop_app.test_client()
    _login(merch, staff["merchandiser"])
    assert merch.get("/dashboard/ops").status_code == 403
    assert "/dashboard/ops" not in merch.get("/dashboard/").get_data(as_text=True)  # no nav link either

    ops = shop_app.test_client()
    _login(ops, staff["ops"])
    ops.get("/api/search?q=headphones")
    page = ops.get("/dashboard/ops")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Operations" in html and 'href="/dashboard/ops"' in html
    assert "in-process (web)" in html  # embedded mode: the web process's scorer is the worker
    assert 'data-stage="total"' in html and "<svg" in html and "latency-bars" in html
    assert "<script" not in html and "style=" not in html  # strict CSP: no inline script or style
    for path in ("/dashboard/", "/dashboard/experiments/new", "/dashboard/calculator"):
        assert ops.get(path).status_code == 403, path

    admin = shop_app.test_client()
    _login(admin, staff["admin"])
    assert admin.get("/dashboard/ops").status_code == 200
    assert admin.get("/dashboard/").status_code == 200


def test_ops_user_lands_on_the_ops_page_after_login(shop_app, staff):
    client = shop_app.test_client()
    html = client.get("/dashboard/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = client.post("/dashboard/login", data={"email": staff["ops"], "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"].endswith("/dashboard/ops")


# --- end to end with a real worker process ----------------------------------------------------------------------------


def test_request_id_follows_a_search_into_a_real_worker_and_the_ops_page_shows_it(redis_url, tiny_model_dir, tmp_path):
    from webapp import create_app
    from workers.client import CeleryDispatcher
    from workers.testing import WorkerProcess, delete_prefixed_keys, isolated_environment, settings_for

    metrics_port = free_port()
    env = isolated_environment(
        redis_url, SHOPRANK_LOG_FORMAT="json", SHOPRANK_LOG_LEVEL="INFO", SHOPRANK_WORKER_METRICS_PORT=str(metrics_port)
    )
    prefix = env["SHOPRANK_QUEUE_PREFIX"]
    node = f"rerank-cpu-obs-{uuid.uuid4().hex[:6]}@localhost"
    args = ["--device", "cpu", "--no-int8", "--model", str(tiny_model_dir), "--hostname", node]
    url = f"sqlite:///{tmp_path / 'obs.db'}"
    prepare_shop_database(url)
    try:
        with WorkerProcess(args, env, tmp_path / "worker.log") as worker:
            worker.wait_ready()
            settings = settings_for(env)
            services = build_test_services(
                url,
                dispatcher=CeleryDispatcher.from_settings(settings),
                redis_url=redis_url,
                queue_prefix=prefix,
                cache_key_prefix=prefix,
                rerank_deadline_ms=60000,
            )
            try:
                app = create_app(services=services)
                client = app.test_client()
                response = client.get("/api/search?q=wireless+headphones", headers={"X-Request-ID": "trace-e2e-7"})
                body = response.get_json()
                assert body["reranked"], body["rerank_status"]

                with services.db.session() as session:
                    create_user(session, "ops-e2e@example.com", PASSWORD, "ops")
                _login(client, "ops-e2e@example.com")
                html = client.get("/dashboard/ops").get_data(as_text=True)
                assert node in html and "<td>fp32</td>" in html and "rerank.cpu" in html
                assert re.search(r'<tr data-queue="rerank.cpu">.*?<td class="num">0</td>', html, re.S)

                families = _families(client)
                live = {s.labels["device"]: s.value for s in families["shoprank_live_workers"]}
                assert live["cpu"] == 1 and live["cuda"] == 0
                assert {s.labels["queue"] for s in families["shoprank_queue_depth"]} == {"rerank.gpu", "rerank.cpu"}
                assert families["shoprank_ops_up"][0].value == 1
                # the autoscaler's signal: the worker's calibrated pairs/s makes the CPU queue's value defined
                rates = {s.labels["queue"]: s.value for s in families["shoprank_pool_pairs_per_second"]}
                assert rates["rerank.cpu"] > 0 and rates["rerank.gpu"] == 0
                assert {s.labels["queue"] for s in families["shoprank_work_waiting_seconds"]} >= {"rerank.cpu", "all"}

                # The worker's own /metrics port: the job it served, its batches and its cache lookups.
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
                    worker_text = answer.read().decode()
                worker_samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(worker_text)
                    for s in family.samples
                }
                assert worker_samples[("shoprank_rerank_jobs_total", (("outcome", "ok"),))] >= 1
                assert worker_samples[("shoprank_rerank_batch_pairs_count", (("where", "worker"),))] >= 1
                assert worker_samples[("shoprank_rerank_batch_tokens_count", (("where", "worker"),))] >= 1
                assert worker_samples[("shoprank_score_cache_misses_total", (("where", "worker"),))] >= 1
            finally:
                services.close()
            worker.stop()
            lines = [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]
    finally:
        delete_prefixed_keys(redis_url, prefix)
    served = [e for e in lines if e["logger"] == "workers.tasks" and "served" in e["message"]]
    assert served, "the worker logged no JSON line for the job"
    assert served[0]["request_id"] == "trace-e2e-7"
    assert any(e["logger"] == "workers.worker_main" and "ready" in e["message"] for e in lines)


def test_search_window_keeps_recording_when_its_redis_dies(private_redis):
    window = SearchWindow(10, private_redis.url)
    window.add(SearchRecord(1.0, 1.0, 2.0, 3.0, "ok"))
    assert [r.total_ms for r in window.records()] == [3.0]
    private_redis.stop()
    window.add(SearchRecord(2.0, 1.0, None, 4.0, "unavailable"))  # no exception: the search must not fail
    window.add(SearchRecord(3.0, 1.0, None, 5.0, "unavailable"))  # within the back-off: Redis is not retried
    summary = window.summary(now=10.0)
    assert summary["searches"] == 2 and summary["fallbacks"] == {"unavailable": 2}
