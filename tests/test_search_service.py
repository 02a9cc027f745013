"""The search flow's promise: the reranker can slow a search down to the deadline, never fail it."""

from __future__ import annotations

import threading
import time

import pytest

from experiments.ranking import Assignment, NoExperiment, RankingConfig
from reranking import Reranker
from reranking.dispatch import InProcessDispatcher, RerankUnavailable
from reranking.scorers.bi_encoder import E5FallbackScorer
from search.service import SearchInputError, SearchService


class SlowScorer(E5FallbackScorer):
    """A real scorer held back until released: an overloaded or stuck model."""

    def __init__(self) -> None:
        super().__init__(fallback_reason="tests")
        self.release = threading.Event()

    def score_pairs(self, pairs, max_batch_size=None):
        self.release.wait(10)
        return super().score_pairs(pairs, max_batch_size)


class BrokenScorer(E5FallbackScorer):
    def score_pairs(self, pairs, max_batch_size=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class ExplodingDispatcher:
    """A dispatcher with a bug (not even a RerankError)."""

    def dispatch(self, job, deadline_seconds):
        raise KeyError("bug in a dispatcher")

    def describe(self):
        return {"mode": "broken"}


class Unavailable:
    def dispatch(self, job, deadline_seconds):
        raise RerankUnavailable("no worker is consuming rerank.cpu")

    def describe(self):
        return {"mode": "celery", "ok": False}


@pytest.fixture
def index(shop_services):
    return shop_services.index


def service(index, dispatcher, config=None, deadline_ms=3000):
    return SearchService(index, dispatcher, NoExperiment(config or RankingConfig()), deadline_ms=deadline_ms)


def first_stage_order(index, query, top_k=100):
    return [h.sku for h in index.first_stage(query, top_k).hits]


def test_reranked_search_reorders_candidates(index):
    dispatcher = InProcessDispatcher({"m": Reranker(E5FallbackScorer())}, "m")
    result = service(index, dispatcher).search("wireless headphones", limit=10, request_id="r-1")
    assert result.reranked and result.rerank_status == "ok"
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert result.scorer["kind"] == "bi-encoder-fallback" and result.request_id == "r-1"
    assert {"first_stage", "passages", "rerank", "total"} <= set(result.timings_ms)
    dispatcher.close()


def test_deadline_falls_back_to_first_stage_order_and_counts_it(index):
    slow = SlowScorer()
    dispatcher = InProcessDispatcher({"m": Reranker(slow)}, "m")
    search = service(index, dispatcher, deadline_ms=200)
    try:
        started = time.monotonic()
        result = search.search("wireless headphones", limit=20)
        assert time.monotonic() - started < 5  # bounded by the deadline, not by the stuck model
        assert not result.reranked and result.rerank_status == "timeout"
        assert [h.item.sku for h in result.hits] == first_stage_order(index, "wireless headphones")[:20]
        assert all(h.rerank_score is None for h in result.hits)
        assert search.stats.snapshot()["fallbacks"] == {"timeout": 1}
    finally:
        slow.release.set()
        dispatcher.close()


@pytest.mark.parametrize(
    ("dispatcher_factory", "status"),
    [
        (lambda: InProcessDispatcher({"m": Reranker(BrokenScorer())}, "m"), "error"),
        (ExplodingDispatcher, "error"),
        (Unavailable, "unavailable"),
    ],
)
def test_worker_errors_and_missing_workers_fall_back(index, dispatcher_factory, status):
    search = service(index, dispatcher_factory())
    result = search.search("coffee grinder", limit=5)
    assert not result.reranked and result.rerank_status == status
    assert [h.item.sku for h in result.hits] == first_stage_order(index, "coffee grinder")[:5]
    assert search.stats.snapshot() == {"searches": 1, "reranked": 0, "fallbacks": {status: 1}}


def test_variant_config_can_turn_reranking_off_and_sets_the_variant(index):
    class Treatment:
        def resolve(self, unit_id, context):
            return Assignment("ranker-2025", "first-stage-only", RankingConfig(rerank=False, first_stage_top_k=7))

    search = SearchService(index, ExplodingDispatcher(), Treatment(), deadline_ms=1000)
    result = search.search("laptop", limit=50, unit_id="u1")
    assert (result.experiment, result.variant, result.rerank_status) == ("ranker-2025", "first-stage-only", "disabled")
    assert result.candidates <= 7 and len(result.hits) <= 7
    assert search.stats.snapshot()["fallbacks"] == {}


@pytest.mark.parametrize(
    ("query", "code"), [("", "empty_query"), ("  \t ", "empty_query"), ("x" * 1001, "query_too_long")]
)
def test_bad_queries_are_input_errors(index, query, code):
    with pytest.raises(SearchInputError) as caught:
        service(index, ExplodingDispatcher()).search(query, limit=5)
    assert caught.value.code == code


def test_filters_apply_inside_the_first_stage(index) -> None:
    """A filtered search ranks the best matching products, not the few matches left in an unfiltered top-K."""
    from decimal import Decimal

    from search.filters import FxRates, PriceBound, SearchFilters

    search = service(index, InProcessDispatcher({"m": Reranker(E5FallbackScorer())}, "m"))
    fx = FxRates()
    unfiltered = search.search("headphones", limit=50)
    brand = next(hit.item.brand for hit in unfiltered.hits if hit.item.brand)
    only_brand = search.search("headphones", limit=50, filters=SearchFilters.of(brands=[brand.upper()]))
    assert only_brand.hits and all((hit.item.brand or "").casefold() == brand.casefold() for hit in only_brand.hits)

    cap = PriceBound(Decimal("50"), "EUR")
    capped = search.search("headphones", limit=50, filters=SearchFilters.of(max_price=cap, in_stock=True))
    assert capped.hits
    for hit in capped.hits:
        assert hit.item.stock > 0
        assert fx.convert(hit.item.price, hit.item.currency, "EUR") <= 50
    # items at or under the cap exist in several currencies, so the conversion, not the listed number, decides
    assert len({hit.item.currency for hit in capped.hits}) > 1

    nothing = search.search("headphones", limit=50, filters=SearchFilters.of(categories=["no-such-category"]))
    assert nothing.hits == [] and nothing.rerank_status == "no_candidates"


def test_filter_rule_compares_converted_prices() -> None:
    from decimal import Decimal

    from search.filters import FxRates, PriceBound, SearchFilters

    fx = FxRates({"EUR": 1.0, "JPY": 0.01})  # overrides: 1 EUR = 1 USD, 100 JPY = 1 USD
    under_50 = SearchFilters.of(max_price=PriceBound(Decimal("50"), "EUR"))

    def matches(price: str, currency: str) -> bool:
        reference = fx.to_reference(Decimal(price), currency)
        return under_50.matches(category="c", brand=None, language="en", stock=1, reference_price=reference, fx=fx)

    assert matches("50.00", "EUR") and matches("4999", "JPY")
    assert not matches("50.01", "EUR") and not matches("5001", "JPY")
    assert not under_50.matches(category="c", brand=None, language="en", stock=1, reference_price=None, fx=fx)
    assert SearchFilters.of(brands=[" Sony "]).brands == frozenset({"sony"})
    assert SearchFilters().is_empty() and not under_50.is_empty()
