"""POST /api/rank (SQLite and PostgreSQL): a shop's own first stage reranked like a search, with experiments,
interleaving, events, the reranker's fallback and clear 4xx for bad bodies."""

from __future__ import annotations

import sys
import types

import pytest
from sqlalchemy import select

from experiments.manage import VariantSpec
from experiments.ranking import NoExperiment, RankingConfig
from experiments.store import Event, impression_ids
from experiments.store.aggregate import ab_report, interleaving_report
from experiments.store.experiment_models import Exposure
from reranking.dispatch import RerankUnavailable
from search.service import SearchInputError, SearchService
from tests.experiment_support import ab_spec, follow_up_event, impression_event, reset_experiments, running
from tests.shop_support import REPO

HEADPHONES = "wireless noise cancelling headphones"


@pytest.fixture(autouse=True)
def patient_reranker(shop_services, monkeypatch):
    """Inline products are embedded on the fly; on a loaded machine that can pass the 3 s deadline, and these
    tests check the reranked order (the fallback has its own test)."""
    monkeypatch.setattr(shop_services.search, "deadline_ms", 60_000)


@pytest.fixture
def clean(shop_services):
    reset_experiments(shop_services)
    yield shop_services
    reset_experiments(shop_services)


def _skus(client, q: str, n: int) -> list[str]:
    body = client.get("/api/search", query_string={"q": q, "limit": n, "lang": "en"}).get_json()
    return [r["sku"] for r in body["results"]]


@pytest.fixture
def mixed(client):
    """Five unrelated products first, then three headphones: the order a poor first stage might return."""
    relevant = _skus(client, HEADPHONES, 3)
    unrelated = [s for s in _skus(client, "espresso coffee beans", 8) if s not in relevant][:5]
    assert len(relevant) == 3 and len(unrelated) == 5
    return unrelated + relevant, relevant


def _rank(client, body: dict, status: int = 200) -> dict:
    response = client.post("/api/rank", json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_catalog_skus_are_reranked_and_answered_like_a_search(clean, client, mixed):
    candidates, relevant = mixed
    body = _rank(client, {"query": HEADPHONES, "lang": "en", "user": "rank-u1", "candidates": candidates})
    assert body["reranked"] is True and body["rerank_status"] == "ok"
    assert body["experiment"] is None and body["variant"] is None and body["interleaved"] is False
    # a server-signed impression id (issue 24) for this query and the number of products answered
    key = impression_ids.impression_key(client.application.config["SECRET_KEY"])
    assert impression_ids.verifies(key, body["impression_id"], kind=impression_ids.SEARCH, query=body["query"],
                                   items=len(body["results"]))  # fmt: skip
    assert body["request_id"] and body["ignored"] == []
    assert body["candidates"] == len(candidates) and len(body["results"]) == len(candidates)
    assert body["results"][0]["sku"] in relevant  # the reranker pulled a headphone from position 6-8 to the top
    assert [r["rank"] for r in body["results"]] == list(range(1, len(candidates) + 1))
    scores = [r["rerank_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    for result in body["results"]:
        position = candidates.index(result["sku"])
        assert result["index"] == position and result["first_stage_rank"] == position + 1
        assert result["retriever_ranks"] == {"client": position + 1}
        assert result["price_display"] and result["title"]  # our catalog's fields
    assert {"passages", "rerank", "total"} <= set(body["timings_ms"])
    top2 = _rank(client, {"query": HEADPHONES, "user": "rank-u1", "candidates": candidates, "top_n": 2})
    assert [r["sku"] for r in top2["results"]] == [r["sku"] for r in body["results"][:2]]


def test_inline_products_rank_from_what_the_shop_sent(client):
    candidates = [
        {"sku": "os-1", "title": "Stainless steel garlic press", "price": 12.5, "currency": "EUR", "language": "en"},
        {"title": "Kabellose Kopfhörer mit Geräuschunterdrückung", "description": "Bluetooth, 30 h Akku"},
        {"sku": "os-3", "title": "Gaming mouse pad XXL", "brand": "Acme", "attributes": {"size": "90x40 cm"}},
    ]
    body = _rank(client, {"query": "noise cancelling headphones", "candidates": candidates})
    assert body["reranked"] is True and body["ignored"] == []
    first = body["results"][0]
    assert (first["sku"], first["index"]) == ("candidate-1", 1)  # an inline product without a sku gets one
    assert first["price"] is None and first["currency"] is None and first["price_display"] is None
    assert first["language"] is None and first["stock"] is None
    press = next(r for r in body["results"] if r["sku"] == "os-1")
    assert (press["price"], press["currency"], press["language"]) == (12.5, "EUR", "en")
    assert press["price_display"] == "€12.50"


def test_unknown_skus_are_ignored_and_listed(client, mixed):
    candidates, _ = mixed
    body = _rank(client, {"query": HEADPHONES, "candidates": ["NO-SUCH-SKU", candidates[0], "ALSO-MISSING"]})
    assert [r["sku"] for r in body["results"]] == [candidates[0]]
    assert body["results"][0]["index"] == 1 and body["candidates"] == 1
    assert body["ignored"] == [
        {"index": 0, "sku": "NO-SUCH-SKU", "reason": "unknown_sku"},
        {"index": 2, "sku": "ALSO-MISSING", "reason": "unknown_sku"},
    ]
    nothing = _rank(client, {"query": HEADPHONES, "candidates": []})
    assert nothing["results"] == [] and nothing["rerank_status"] == "no_candidates" and nothing["impression_id"]


def test_experiment_variants_events_and_report_work_as_for_search(clean, client, mixed):
    candidates, _ = mixed
    running(clean, ab_spec("rank-ab"))
    served: dict[str, dict] = {}
    for i in range(12):
        user = f"rank-shopper-{i}"
        first = _rank(client, {"query": HEADPHONES, "lang": "en", "user": user, "candidates": candidates})
        again = _rank(client, {"query": HEADPHONES, "lang": "en", "user": user, "candidates": candidates})
        assert first["experiment"] == "rank-ab" and again["variant"] == first["variant"]  # sticky
        assert first["impression_id"] != again["impression_id"]
        if first["variant"] == "control":  # control ranks without the reranker: the client's order
            assert first["rerank_status"] == "disabled" and [r["sku"] for r in first["results"]] == candidates
        else:
            assert first["rerank_status"] == "ok"
        served[user] = first
    assert {b["variant"] for b in served.values()} == {"control", "treatment"}
    with clean.db.session() as session:
        exposures = list(session.scalars(select(Exposure).where(Exposure.experiment == "rank-ab")))
    assert {e.unit_id: e.variant for e in exposures} == {u: b["variant"] for u, b in served.items()}
    assert {e.surface for e in exposures} == {"api"}

    events = []
    for user, body in served.items():
        clicked = body["results"][0]
        impression = body["impression_id"]
        events += [
            impression_event(body, user),
            follow_up_event("click", user, impression, sku=clicked["sku"]),
            follow_up_event("purchase", user, impression, sku=clicked["sku"], value=100, currency="USD"),
        ]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    with clean.db.session() as session:
        totals = ab_report(session, "rank-ab", {"USD": 1.0}).totals()
    per_variant = {v: sum(1 for b in served.values() if b["variant"] == v) for v in ("control", "treatment")}
    for variant, units in per_variant.items():
        stats = totals[variant]
        assert (stats.units, stats.impressions, stats.clicks, stats.converted_units) == (units, units, units, units)
        assert stats.revenue == pytest.approx(100.0 * units)


def test_interleaving_merges_two_rankers_and_credits_clicks(clean, client, mixed):
    candidates, _ = mixed
    variants = [VariantSpec("client-order", rerank=False), VariantSpec("reranked", rerank=True)]
    running(clean, ab_spec("rank-il", kind="interleaving", variants=variants))
    request = {"query": HEADPHONES, "lang": "en", "user": "il-shopper", "candidates": candidates}
    body = _rank(client, request)
    assert body["interleaved"] is True and body["variant"] == "interleaved"
    teams = [r["team"] for r in body["results"]]
    assert {"A", "B"} <= set(teams) and abs(teams.count("A") - teams.count("B")) <= 1
    assert [r["sku"] for r in _rank(client, request)["results"]] == [r["sku"] for r in body["results"]]
    b_pick = next(r for r in body["results"] if r["team"] == "B")
    impression = body["impression_id"]
    events = [
        impression_event(body, "il-shopper"),
        follow_up_event("click", "il-shopper", impression, sku=b_pick["sku"]),
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    with clean.db.session() as session:
        total = interleaving_report(session, "rank-il").total()
    assert (total.wins_a, total.wins_b, total.ties) == (0, 1, 0)


class Unavailable:
    def dispatch(self, job, deadline_seconds):
        raise RerankUnavailable("no worker is consuming rerank.cpu")

    def describe(self):
        return {"mode": "celery", "ok": False}


def test_reranker_unavailable_keeps_the_clients_order(shop_services, client, mixed):
    candidates, _ = mixed
    broken = SearchService(shop_services.index, Unavailable(), NoExperiment(RankingConfig()), deadline_ms=500)
    original, shop_services.search = shop_services.search, broken
    try:
        body = _rank(client, {"query": HEADPHONES, "candidates": candidates})
    finally:
        shop_services.search = original
    assert body["reranked"] is False and body["rerank_status"] == "unavailable"
    assert [r["sku"] for r in body["results"]] == candidates
    assert all(r["rerank_score"] is None for r in body["results"]) and broken.stats.fallbacks["unavailable"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        ({"candidates": ["A"]}, 422, "empty_query", "query"),
        ({"query": "  ", "candidates": ["A"]}, 422, "empty_query", "query"),
        ({"query": 7, "candidates": ["A"]}, 422, "invalid_query", "query"),
        ({"query": "a\x00b", "candidates": ["A"]}, 422, "invalid_query", "U+0000"),
        ({"query": "x" * 1001, "candidates": ["A"]}, 422, "query_too_long", "1000"),
        ({"query": "q"}, 422, "invalid_candidates", "candidates"),
        ({"query": "q", "candidates": "A,B"}, 422, "invalid_candidates", "candidates"),
        ({"query": "q", "candidates": [1]}, 422, "invalid_candidates", "candidates[0]"),
        ({"query": "q", "candidates": ["A", {"title": ""}]}, 422, "invalid_candidates", "candidates[1].title"),
        ({"query": "q", "candidates": [{"title": 5}]}, 422, "invalid_candidates", "candidates[0].title"),
        ({"query": "q", "candidates": [{"title": "t\x00"}]}, 422, "invalid_candidates", "candidates[0].title"),
        ({"query": "q", "candidates": [{"title": "t" * 501}]}, 422, "invalid_candidates", "candidates[0].title"),
        (
            {"query": "q", "candidates": [{"title": "t", "price": -1, "currency": "USD"}]},
            422,
            "invalid_candidates",
            "price",
        ),
        (
            {"query": "q", "candidates": [{"title": "t", "price": "abc", "currency": "USD"}]},
            422,
            "invalid_candidates",
            "price",
        ),
        (
            {"query": "q", "candidates": [{"title": "t", "price": 5}]},
            422,
            "invalid_candidates",
            "candidates[0].currency",
        ),
        ({"query": "q", "candidates": [{"title": "t", "currency": "XYZ"}]}, 422, "invalid_candidates", "currency"),
        ({"query": "q", "candidates": [{"title": "t", "language": "xx"}]}, 422, "invalid_candidates", "language"),
        ({"query": "q", "candidates": [{"title": "t", "descripton": "typo"}]}, 422, "invalid_candidates", "descripton"),
        ({"query": "q", "candidates": [{"title": "t", "stock": 1.5}]}, 422, "invalid_candidates", "stock"),
        ({"query": "q", "candidates": ["A", "B", "A"]}, 422, "invalid_candidates", "candidates[0]"),
        ({"query": "q", "candidates": ["A", {"sku": "A", "title": "t"}]}, 422, "invalid_candidates", "candidates[1]"),
        ({"query": "q", "candidates": ["A"], "top_n": 0}, 422, "invalid_top_n", "top_n"),
        ({"query": "q", "candidates": ["A"], "top_n": -3}, 422, "invalid_top_n", "top_n"),
        ({"query": "q", "candidates": ["A"], "top_n": 101}, 422, "invalid_top_n", "100"),
        ({"query": "q", "candidates": ["A"], "top_n": "5"}, 422, "invalid_top_n", "top_n"),
        ({"query": "q", "candidates": ["A"], "top_n": True}, 422, "invalid_top_n", "top_n"),
        ({"query": "q", "candidates": ["A"], "lang": "xx"}, 422, "unknown_language", "lang"),
        ({"query": "q", "candidates": ["A"], "lang": ["en"]}, 422, "unknown_language", "lang"),
        ({"query": "q", "candidates": ["A"], "market": "Germany"}, 422, "invalid_market", "market"),
        ({"query": "q", "candidates": ["A"], "user": "u" * 129}, 422, "invalid_user", "user"),
        ({"query": "q", "candidates": ["A"], "user": "u\x00"}, 422, "invalid_user", "user"),
        ({"query": "q", "candidates": [f"S{i}" for i in range(1001)]}, 413, "too_many_candidates", "1000"),
        (["not", "an", "object"], 400, "invalid_body", "object"),
    ],
)
def test_bad_rank_bodies_are_4xx_naming_the_field(client, body, status, code, names):
    response = client.post("/api/rank", json=body)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and names in error["message"], error


def test_every_candidate_problem_is_listed_at_once(client):
    body = {"query": "q", "candidates": [{"title": ""}, "ok", {"title": "t", "price": "x", "currency": "USD"}, 3]}
    error = client.post("/api/rank", json=body).get_json()["error"]
    assert error["details"] == [
        "candidates[0].title: required, and not empty",
        "candidates[2].price: must be a non-negative amount below 1,000,000,000,000, got 'x'",
        "candidates[3]: must be a sku string or a product object, got int",
    ]
    assert "(and 2 more problems)" in error["message"]


def test_malformed_json_and_a_configured_cap(shop_services, client):
    original, shop_services.settings = shop_services.settings, shop_services.settings.replace(rank_max_candidates=2)
    try:
        assert client.post("/api/rank", json={"query": "q", "candidates": ["A", "B", "C"]}).status_code == 413
        assert client.post("/api/rank", json={"query": "q", "candidates": ["A", "B"]}).status_code == 200
    finally:
        shop_services.settings = original
    broken = client.post("/api/rank", data=b'{"query": "q", "candidates": [', content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"]["code"] == "invalid_json"


# --- the docs' OpenSearch example (docs/api.md), run as written -----------------------------------------------


class StandInOpenSearch:
    """Answers like ``opensearch-py``'s ``search`` with fixed hits (no OpenSearch server on this machine)."""

    hits: list[dict] = []

    def __init__(self, *hosts, **options) -> None:
        pass

    def search(self, index: str, body: dict) -> dict:
        assert index == "products" and body["query"]["multi_match"]["query"]
        return {"hits": {"hits": self.hits[: body["size"]]}}


def _requests_through(client, broken: bool = False) -> types.ModuleType:
    """``requests.post`` carried by the Flask test client instead of a socket."""

    class RequestException(Exception):
        pass

    class Response:
        def __init__(self, flask_response) -> None:
            self.status_code = flask_response.status_code
            self._body = flask_response.get_json()

        def raise_for_status(self) -> None:
            if self.status_code >= 400:
                raise RequestException(self.status_code)

        def json(self) -> dict:
            return self._body

    def post(url: str, json: dict, timeout: float) -> Response:
        if broken:
            raise RequestException("connection refused")
        return Response(client.post(url.removeprefix("http://127.0.0.1:8000"), json=json))

    module = types.ModuleType("requests")
    module.post, module.RequestException = post, RequestException
    return module


def _readme_example(monkeypatch, client, broken: bool = False) -> dict:
    text = (REPO / "docs" / "api.md").read_text()
    code = text.split("<!-- opensearch-example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    opensearchpy = types.ModuleType("opensearchpy")
    opensearchpy.OpenSearch = StandInOpenSearch
    monkeypatch.setitem(sys.modules, "opensearchpy", opensearchpy)
    monkeypatch.setitem(sys.modules, "requests", _requests_through(client, broken))
    namespace: dict = {}
    exec(compile(code, "docs/api.md", "exec"), namespace)
    return namespace


def test_readme_opensearch_example_runs_as_written(clean, client, monkeypatch, mixed):
    candidates, relevant = mixed
    items = {item.sku: item for item in clean.index.get(candidates)}
    StandInOpenSearch.hits = [
        {
            "_id": sku,
            "_source": {
                "title": items[sku].title,
                "description": items[sku].description,
                "price": float(items[sku].price),
                "currency": items[sku].currency,
            },
        }
        for sku in candidates
    ]
    running(clean, ab_spec("readme", variants=[VariantSpec("control", rerank=True), VariantSpec("t", rerank=True)]))
    example = _readme_example(monkeypatch, client)
    products, impression_id = example["search_page"](HEADPHONES, "readme-shopper")
    assert len(products) == len(candidates) and products[0]["sku"] in relevant and products[0]["position"] == 1
    assert products[0]["title"] == items[products[0]["sku"]].title  # rendered from the OpenSearch hit
    example["on_click"]("readme-shopper", impression_id, products[0]["sku"], 1)
    with clean.db.session() as session:
        (exposure,) = session.scalars(select(Exposure).where(Exposure.experiment == "readme"))
        stored = {e.type: e for e in session.scalars(select(Event).where(Event.unit_id == "readme-shopper"))}
    assert stored["impression"].event_id == impression_id and stored["impression"].result_count == len(candidates)
    assert (stored["click"].experiment, stored["click"].variant) == ("readme", exposure.variant)

    offline = _readme_example(monkeypatch, client, broken=True)
    products, impression_id = offline["search_page"](HEADPHONES, "readme-shopper", size=3)
    assert impression_id is None and [p["title"] for p in products] == [items[s].title for s in candidates[:3]]


def test_rank_candidates_keeps_the_given_order_as_first_stage_and_the_variants_depth(shop_services, mixed):
    candidates, _ = mixed
    items = shop_services.index.get(candidates)

    def ranked(config: RankingConfig, given=items, limit: int = 100):
        service = SearchService(shop_services.index, shop_services.dispatcher, NoExperiment(config), deadline_ms=1)
        return service.rank_candidates(HEADPHONES, given, limit=limit, unit_id="u")

    unranked = ranked(RankingConfig(rerank=False))
    assert [h.item.sku for h in unranked.hits] == candidates and unranked.rerank_status == "disabled"
    assert [h.first_stage_rank for h in unranked.hits] == list(range(1, len(candidates) + 1))
    scores = [h.first_stage_score for h in unranked.hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    shallow = ranked(RankingConfig(rerank=False, first_stage_top_k=3))
    assert [h.item.sku for h in shallow.hits] == candidates[:3] and shallow.candidates == len(candidates)
    assert [h.item.sku for h in ranked(RankingConfig(rerank=False), limit=2).hits] == candidates[:2]
    with pytest.raises(SearchInputError) as repeated:
        ranked(RankingConfig(), given=[items[0], items[1], items[0]])
    assert repeated.value.code == "duplicate_sku" and "candidate 3" in repeated.value.message


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1" + b"0" * 400 + b".5"])
def test_an_overflowing_number_is_a_400_never_infinity_in_the_answer(client, number):
    """Issue 22 item 4: ``1e999`` parses to ``inf`` and came back as ``Infinity``, which is not JSON."""
    body = b'{"query": "mouse", "candidates": [{"title": "Mouse pad", "attributes": {"size": ' + number + b"}}]}"
    response = client.post("/api/rank", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert b"Infinity" not in response.get_data()


def test_inline_attribute_numbers_must_be_finite_even_past_the_parser(client):
    from webapp.rank_schema import _attributes, _Problems

    problems = _Problems()
    _attributes({"attributes": {"a": float("inf"), "b": float("nan"), "c": 1.5}}, "candidates[0]", problems)
    fields = [item.split(":")[0] for item in problems.items]
    assert fields == ["candidates[0].attributes.a", "candidates[0].attributes.b"]


def test_an_oversized_rank_body_is_413_before_it_is_parsed(shop_services, client):
    """Issue 22 item 10: an 8 MB body was parsed (seconds of CPU) before its 413; now the size decides first."""
    original = shop_services.settings
    shop_services.settings = original.replace(rank_max_request_bytes=1024 * 1024)
    try:
        body = b'{"query": "q", "candidates": [' + b"x" * (1024 * 1024 + 10)  # not even JSON: never parsed
        response = client.post("/api/rank", data=body, content_type="application/json")
        assert response.status_code == 413, response.get_data(as_text=True)[:200]
        assert "1048576" in response.get_json()["error"]["message"]
    finally:
        shop_services.settings = original
