"""Pair-score cache (DESIGN.md §4): only misses reach the model; an outage is no error."""

from __future__ import annotations

import numpy as np
import pytest

from reranking import MemoryScoreCache, RedisScoreCache, Reranker, pair_cache_key

QUERY = "wireless headphones"
PASSAGES = [f"Title: Product number {i}\nDescription: {'detail ' * (i % 7)}" for i in range(20)]


def _pairs_scored(reranker: Reranker) -> int:
    return reranker.scorer.stats.snapshot()["pairs_scored"]


@pytest.fixture(params=["memory", "redis"])
def cached_reranker(request, tiny_scorer_fp32, unique_prefix):
    if request.param == "memory":
        return Reranker(tiny_scorer_fp32, MemoryScoreCache())
    redis_url = request.getfixturevalue("redis_url")
    return Reranker(tiny_scorer_fp32, RedisScoreCache(redis_url, key_prefix=unique_prefix, ttl_seconds=60))


def test_second_call_scores_zero_pairs(cached_reranker):
    before = _pairs_scored(cached_reranker)
    first = cached_reranker.score(QUERY, PASSAGES)
    assert _pairs_scored(cached_reranker) - before == len(PASSAGES)
    assert first.cache_misses == len(PASSAGES) and first.cache_hits == 0
    second = cached_reranker.score(QUERY, PASSAGES)
    assert _pairs_scored(cached_reranker) - before == len(PASSAGES)
    assert second.cache_hits == len(PASSAGES) and second.cache_misses == 0
    assert np.allclose(first.raw_scores, second.raw_scores, atol=1e-6)


def test_half_overlap_scores_only_the_new_half(cached_reranker):
    cached_reranker.score(QUERY, PASSAGES[:10])
    before = _pairs_scored(cached_reranker)
    result = cached_reranker.score(QUERY, PASSAGES[5:15])
    assert _pairs_scored(cached_reranker) - before == 5
    assert (result.cache_hits, result.cache_misses) == (5, 5)
    uncached = np.array(cached_reranker.scorer.compute_score([(QUERY, p) for p in PASSAGES[5:15]]))
    assert np.allclose(result.raw_scores, uncached, atol=1e-5)


def test_duplicates_within_and_across_requests_are_scored_once(tiny_scorer_fp32):
    reranker = Reranker(tiny_scorer_fp32, MemoryScoreCache())
    before = _pairs_scored(reranker)
    results = reranker.score_requests([(QUERY, PASSAGES[:3] + PASSAGES[:3]), (QUERY, PASSAGES[:3])])
    assert _pairs_scored(reranker) - before == 3
    assert np.allclose(results[0].raw_scores[:3], results[0].raw_scores[3:])
    assert np.allclose(results[0].raw_scores[:3], results[1].raw_scores)


def test_key_changes_with_model_query_and_passage_not_whitespace():
    base = pair_cache_key("m@1|torch|fp32|512", "q", "p")
    assert base != pair_cache_key("m@2|torch|fp32|512", "q", "p")
    assert base != pair_cache_key("m@1|torch|int8|512", "q", "p")
    assert base != pair_cache_key("m@1|torch|fp32|512", "Q", "p")
    assert base != pair_cache_key("m@1|torch|fp32|512", "q", "p ")


def test_query_whitespace_variants_share_cache_entries(tiny_scorer_fp32):
    reranker = Reranker(tiny_scorer_fp32, MemoryScoreCache())
    reranker.score("wireless  headphones ", PASSAGES[:4])
    assert reranker.score(" wireless headphones", PASSAGES[:4]).cache_hits == 4


def test_redis_stopped_means_correct_scores_without_cache(tiny_scorer_fp32, private_redis):
    cache = RedisScoreCache(private_redis.url, retry_after=60)
    reranker = Reranker(tiny_scorer_fp32, cache)
    warm = reranker.score(QUERY, PASSAGES)
    assert reranker.score(QUERY, PASSAGES).cache_hits == len(PASSAGES)
    private_redis.stop()

    before = _pairs_scored(reranker)
    during_outage = reranker.score(QUERY, PASSAGES)
    assert np.allclose(during_outage.raw_scores, warm.raw_scores, atol=1e-5)
    assert during_outage.cache_misses == len(PASSAGES)
    assert _pairs_scored(reranker) - before == len(PASSAGES)
    assert cache.stats.snapshot()["errors"] >= 1
    assert not cache.available  # bypassed for retry_after seconds instead of timing out every call
    result = reranker.rerank(QUERY, PASSAGES, top_n=3)
    assert len(result.results) == 3


def test_redis_unreachable_from_the_start_is_no_error(tiny_scorer_fp32):
    from tests.conftest import free_port

    reranker = Reranker(tiny_scorer_fp32, RedisScoreCache(f"redis://127.0.0.1:{free_port()}/0"))
    assert reranker.rerank(QUERY, PASSAGES, top_n=5).results


def test_rerank_sorts_by_score_and_keeps_original_indices(tiny_scorer_fp32):
    reranker = Reranker(tiny_scorer_fp32, MemoryScoreCache())
    products = [{"title": f"Product {i}", "price": i, "currency": "EUR"} for i in range(12)]
    outcome = reranker.rerank(QUERY, products, top_n=5)
    scores = [r.score for r in outcome.results]
    assert len(outcome.results) == 5 and scores == sorted(scores, reverse=True)
    all_scores = np.array(tiny_scorer_fp32.compute_score([(QUERY, r.text) for r in outcome.results], normalize=True))
    assert np.allclose(all_scores, scores, atol=1e-5)
    assert all(outcome.results[k].text == reranker.rerank(QUERY, products).results[k].text for k in range(5))
    assert {r.index for r in outcome.results} <= set(range(12))
    assert outcome.results[0].text.startswith(f"Title: Product {outcome.results[0].index}\n")


def test_rerank_rejects_unknown_document_types(tiny_scorer_fp32):
    with pytest.raises(TypeError):
        Reranker(tiny_scorer_fp32).rerank(QUERY, [42])


def test_cached_scores_answers_only_when_every_pair_is_cached(tiny_scorer_fp32):
    from reranking import cached_scores

    reranker = Reranker(tiny_scorer_fp32, MemoryScoreCache())
    namespace = tiny_scorer_fp32.info.cache_namespace
    assert cached_scores(reranker.cache, namespace, QUERY, PASSAGES[:5]) is None
    scored = reranker.score(QUERY, PASSAGES[:5])
    from_cache = cached_scores(reranker.cache, namespace, "  wireless   headphones", PASSAGES[:5])  # normalized
    assert from_cache is not None and np.array_equal(from_cache, scored.raw_scores)
    assert cached_scores(reranker.cache, namespace, QUERY, PASSAGES[:6]) is None  # one pair missing
    assert cached_scores(reranker.cache, namespace + "|other", QUERY, PASSAGES[:5]) is None
