"""The e5 embedder's query LRU: a repeated query is a lookup that never calls (or waits for) the engine."""

from __future__ import annotations

import threading

import numpy as np

from reranking.scorers import bi_encoder
from reranking.scorers.bi_encoder import E5Embedder


class CountingEngine:
    """Wraps the real engine and counts the query texts it encodes."""

    def __init__(self, engine):
        self.engine, self.encoded = engine, []

    def query(self, texts):
        self.encoded.extend(texts)
        return self.engine.query(texts)


def test_repeated_queries_are_served_from_the_lru_with_the_same_vectors():
    embedder = E5Embedder(query_cache_size=2)
    reference = np.asarray(embedder._engine.query(["rote Schuhe", "红色的鞋"]), dtype=np.float32)
    engine = embedder._engine = CountingEngine(embedder._engine)

    first = embedder.queries(["rote Schuhe", "红色的鞋", "rote Schuhe"])
    assert engine.encoded == ["rote Schuhe", "红色的鞋"]  # each distinct text once, even within one call
    np.testing.assert_allclose(first, reference[[0, 1, 0]], atol=1e-6)

    again = embedder.queries(["红色的鞋", "rote Schuhe"])
    assert engine.encoded == ["rote Schuhe", "红色的鞋"]  # nothing encoded again
    np.testing.assert_array_equal(again, first[[1, 0]])

    again[0] = 0.0  # the caller owns what it gets: the cached vector is untouched
    np.testing.assert_array_equal(embedder.queries(["红色的鞋"])[0], first[1])

    embedder.queries(["zapatos rojos"])  # a third text evicts the least recently used one (size 2)
    embedder.queries(["rote Schuhe"])
    assert engine.encoded == ["rote Schuhe", "红色的鞋", "zapatos rojos", "rote Schuhe"]


def test_a_cached_query_does_not_wait_for_the_engine():
    embedder = E5Embedder()
    embedder.queries(["wireless headphones"])
    with bi_encoder._ENGINE_CALL_LOCK:  # another thread is encoding something
        done = threading.Event()
        worker = threading.Thread(target=lambda: (embedder.queries(["wireless headphones"]), done.set()))
        worker.start()
        assert done.wait(5), "a cached query waited for the engine lock"
    worker.join()
