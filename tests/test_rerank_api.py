"""Rerank APIs in the Cohere v2, Jina and TEI shapes, exactly as existing clients read them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from werkzeug.serving import make_server

from shoprank.apikeys import revoke_api_key
from tests.shop_support import create_key

QUERY = "wireless noise cancelling headphones"
DOCUMENTS = [
    "Title: Garden hose 30 m\nPrice: $25.00",
    "Title: Sony WH-1000XM5 Wireless Noise Cancelling Headphones\nPrice: $399.00",
    "Title: Stainless steel kitchen knife set",
    "Title: Bose QuietComfort Ultra wireless headphones with noise cancelling",
]


@pytest.fixture
def api_key(shop_services):
    return create_key(shop_services)


@pytest.fixture
def auth(api_key):
    return {"Authorization": f"Bearer {api_key}"}


def expected_scores(shop_services, query, texts):
    """What the deployment's scorer says for these pairs, computed directly."""
    reranker = next(iter(shop_services.dispatcher._rerankers.values()))
    return reranker.scorer.normalize(reranker.scorer.score_pairs([(query, t) for t in texts]))


def test_cohere_v2_response_field_by_field(client, auth, shop_services):
    response = client.post(
        "/v2/rerank",
        json={"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True},
        headers=auth,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"id", "results", "meta"}
    assert isinstance(body["id"], str) and len(body["id"]) == 36
    assert body["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    results = body["results"]
    assert len(results) == 3
    expected = expected_scores(shop_services, QUERY, DOCUMENTS)
    order = list(np.argsort(-expected, kind="stable"))[:3]
    assert [r["index"] for r in results] == order
    for result in results:
        assert set(result) == {"index", "relevance_score", "document"}
        assert isinstance(result["index"], int) and isinstance(result["relevance_score"], float)
        assert result["relevance_score"] == pytest.approx(float(expected[result["index"]]), abs=1e-5)
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
    assert set(order[:2]) == {1, 3}  # the two headphones beat the hose and the knives
    assert response.headers["X-Shoprank-Model"].startswith("intfloat/multilingual-e5-small")


def test_cohere_defaults_objects_and_search_units(client, auth):
    documents = [{"text": f"Title: product {i}", "id": f"doc-{i}"} for i in range(250)]
    body = client.post("/v2/rerank", json={"query": "product 7", "documents": documents}, headers=auth).get_json()
    assert len(body["results"]) == 250 and "document" not in body["results"][0]  # return_documents defaults to false
    assert body["meta"]["billed_units"]["search_units"] == 3  # 1 per 100 documents
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    with_docs = client.post(
        "/v2/rerank", json={"query": "q", "documents": documents[:2], "return_documents": True}, headers=auth
    ).get_json()
    assert {tuple(sorted(r["document"].items())) for r in with_docs["results"]} == {
        (("id", "doc-0"), ("text", "Title: product 0")),
        (("id", "doc-1"), ("text", "Title: product 1")),
    }


def test_jina_v1_shape_returns_documents_by_default(client, auth):
    body = client.post(
        "/v1/rerank",
        json={"model": "jina-reranker-v2-base-multilingual", "query": QUERY, "documents": DOCUMENTS},
        headers=auth,
    ).get_json()
    assert body["model"] == "jina-reranker-v2-base-multilingual" and "total_tokens" in body["usage"]
    assert all(set(r) == {"index", "relevance_score", "document"} for r in body["results"])
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2, 3]


def test_tei_shape(client, auth, shop_services):
    response = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True}, headers=auth)
    body = response.get_json()
    assert isinstance(body, list) and len(body) == 4
    assert all(set(item) == {"index", "score", "text"} for item in body)
    assert [item["score"] for item in body] == sorted((item["score"] for item in body), reverse=True)
    assert body[0]["text"] == DOCUMENTS[body[0]["index"]]
    raw = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True}, headers=auth).get_json()
    assert "text" not in raw[0] and all(-1.0 <= item["score"] <= 1.0 for item in raw)  # cosine, not normalized


def test_api_keys_are_required_and_revocable(client, shop_services, api_key):
    payload = {"query": QUERY, "documents": DOCUMENTS}
    missing = client.post("/v2/rerank", json=payload)
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == "missing_api_key"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post("/rerank", json={"query": "q", "texts": ["a"]}, headers={"Authorization": "Bearer srk_nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "invalid_api_key"
    assert client.post("/v2/rerank", json=payload, headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    with shop_services.db.session() as session:
        from sqlalchemy import select

        from shoprank.apikeys import ApiKey, hash_key

        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(api_key)))
        assert key.last_used_at is not None and api_key not in (key.key_hash, key.display_prefix)
        revoke_api_key(session, key.id)
    assert client.post("/v2/rerank", json=payload, headers={"Authorization": f"Bearer {api_key}"}).status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v2/rerank", {"query": "", "documents": ["a"]}, 422, "empty_query"),
        ("/v2/rerank", {"query": "   ", "documents": ["a"]}, 422, "empty_query"),
        ("/v2/rerank", {"query": "x" * 1001, "documents": ["a"]}, 422, "query_too_long"),
        ("/v2/rerank", {"query": "q", "documents": ["a", 3]}, 422, "invalid_document"),
        ("/v2/rerank", {"query": "q", "documents": [None]}, 422, "invalid_document"),
        ("/v2/rerank", {"query": "q", "documents": [{"title": "no text"}]}, 422, "invalid_document"),
        ("/v2/rerank", {"query": "q", "documents": []}, 422, "invalid_request"),
        ("/v2/rerank", {"query": "q", "documents": "a"}, 422, "invalid_request"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": -1}, 422, "invalid_request"),
        ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": True}, 422, "invalid_request"),
        ("/v2/rerank", {"query": 5, "documents": ["a"]}, 422, "invalid_request"),
        ("/v2/rerank", {"query": "q", "documents": ["d"] * 1001}, 413, "too_many_documents"),
        ("/rerank", {"query": "q", "texts": ["a", {"text": "b"}]}, 422, "invalid_document"),
        ("/rerank", {"query": "q", "texts": ["a"], "raw_scores": "yes"}, 422, "invalid_request"),
        ("/v1/rerank", ["not", "an", "object"], 400, "invalid_body"),
    ],
)
def test_bad_rerank_requests(client, auth, path, body, status, code):
    response = client.post(path, json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("raw", "code"), [(b"{oops", "invalid_json"), (b"\xc3\x28", "invalid_encoding"), (b"", "empty_body")]
)
def test_malformed_rerank_bodies(client, auth, raw, code):
    response = client.post("/v2/rerank", data=raw, content_type="application/json", headers=auth)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_rate_limit_is_429_with_retry_after(shop_services, client, auth):
    limiter = shop_services.rate_limiter
    old = limiter.limit
    limiter.limit = 2
    try:
        statuses = [
            client.post("/rerank", json={"query": "q", "texts": ["a"]}, headers=auth).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        limited = client.post("/rerank", json={"query": "q", "texts": ["a"]}, headers=auth)
        assert limited.get_json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    finally:
        limiter.limit = old


def test_reranker_failure_is_503(shop_db_url):
    from tests.shop_support import build_test_services
    from webapp import create_app

    class Down:
        def dispatch(self, job, deadline_seconds):
            from reranking.dispatch import RerankUnavailable

            raise RerankUnavailable("no worker")

        def describe(self):
            return {"mode": "celery", "ok": False}

    services = build_test_services(shop_db_url, dispatcher=Down())
    try:
        client = create_app(services=services).test_client()
        headers = {"Authorization": f"Bearer {create_key(services)}"}
        response = client.post("/v2/rerank", json={"query": "q", "documents": ["a"]}, headers=headers)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.get_json()["error"]["code"] == "reranker_unavailable"
        search = client.get("/api/search?q=headphones")  # the same outage never fails a search
        assert search.status_code == 200 and search.get_json()["rerank_status"] == "unavailable"
    finally:
        services.close()


@pytest.fixture
def live_server(shop_app):
    server = make_server("127.0.0.1", 0, shop_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def test_the_cohere_sdk_works_unchanged_against_a_live_server(live_server, api_key, shop_services):
    import cohere

    client = cohere.ClientV2(api_key=api_key, base_url=live_server, timeout=30, max_retries=0)
    started = time.monotonic()
    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=2)
    assert time.monotonic() - started < 30
    assert len(response.results) == 2
    expected = expected_scores(shop_services, QUERY, DOCUMENTS)
    assert [r.index for r in response.results] == list(np.argsort(-expected, kind="stable"))[:2]
    assert response.results[0].relevance_score >= response.results[1].relevance_score
    assert response.meta.billed_units.search_units == 1

    bad = cohere.ClientV2(api_key="srk_wrong", base_url=live_server, max_retries=0)
    with pytest.raises(cohere.core.api_error.ApiError) as caught:
        bad.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS)
    assert caught.value.status_code == 401
