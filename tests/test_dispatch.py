"""In-process rerank dispatch: deadline, typed errors, no backlog of doomed jobs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from reranking import MemoryScoreCache, Reranker
from reranking.dispatch import InProcessDispatcher, RerankError, RerankJob, RerankTimeout, RerankUnavailable

PASSAGES = [f"Title: Product {i}" for i in range(10)]


@pytest.fixture
def dispatcher(tiny_scorer_fp32):
    d = InProcessDispatcher({"default": Reranker(tiny_scorer_fp32, MemoryScoreCache())}, "default")
    yield d
    d.close()


def test_scores_come_back_in_input_order(dispatcher, tiny_scorer_fp32):
    result = dispatcher.dispatch(RerankJob("headphones", PASSAGES), deadline_seconds=10)
    expected = tiny_scorer_fp32.compute_score([("headphones", p) for p in PASSAGES])
    assert np.allclose(result.raw_scores, expected, atol=1e-5)
    assert all(0 < s < 1 for s in result.normalized_scores)
    assert result.served_by == "in-process" and result.scorer["kind"] == "cross-encoder"
    assert result.cache_misses == 10 and dispatcher.dispatch(RerankJob("headphones", PASSAGES), 10).cache_hits == 10


def test_unknown_model_is_unavailable(dispatcher):
    with pytest.raises(RerankUnavailable):
        dispatcher.dispatch(RerankJob("q", PASSAGES, model="other"), deadline_seconds=1)


class _SlowScorer:
    """Wraps a real scorer and holds each call until released: a stand-in for an overloaded model."""

    def __init__(self, scorer):
        self._scorer, self.release, self.calls = scorer, threading.Event(), 0
        self.info, self.stats = scorer.info, scorer.stats

    def score_pairs(self, pairs, max_batch_size=None):
        self.calls += 1
        self.release.wait(5)
        return self._scorer.score_pairs(pairs)

    def normalize(self, raw):
        return self._scorer.normalize(raw)


def test_deadline_raises_timeout_and_expired_jobs_are_skipped(tiny_scorer_fp32):
    slow = _SlowScorer(tiny_scorer_fp32)
    dispatcher = InProcessDispatcher({"default": Reranker(slow)}, "default")
    try:
        started = time.monotonic()
        with pytest.raises(RerankTimeout):
            dispatcher.dispatch(RerankJob("q", PASSAGES), deadline_seconds=0.2)
        assert time.monotonic() - started < 1.0
        with pytest.raises(RerankTimeout):  # queued behind the first; its deadline passes in the queue
            dispatcher.dispatch(RerankJob("q2", PASSAGES), deadline_seconds=0.1)
        slow.release.set()
        assert dispatcher.dispatch(RerankJob("q3", PASSAGES), deadline_seconds=5).raw_scores
        assert slow.calls == 2  # q and q3 ran; q2 was skipped, not computed for nobody
        assert dispatcher.skipped_expired == 1
    finally:
        slow.release.set()
        dispatcher.close()


def test_model_errors_become_rerank_errors(tiny_scorer_fp32):
    class Broken(_SlowScorer):
        def score_pairs(self, pairs, max_batch_size=None):
            raise RuntimeError("CUDA error: device-side assert")

    dispatcher = InProcessDispatcher({"default": Reranker(Broken(tiny_scorer_fp32))}, "default")
    with pytest.raises(RerankError, match="device-side assert"):
        dispatcher.dispatch(RerankJob("q", PASSAGES), deadline_seconds=5)
    dispatcher.close()
