"""A restart's warm-up never blocks or times out a real search (issue 24, item 5).

``shoprank serve`` warms before it listens (``AppServices.warm``: index and query encoder) and then warms the
reranker in the background (``AppServices.warm_scorer``, the in-process dispatcher's low-priority ``warm``; the
warm-head loop queues the same kind of work). The first shopper may arrive while that background warming is
still scoring: here it is made to last seconds (a real e5 scorer paced to a known speed, warming a query's whole
head), and a real search through the Flask app, issued while it runs, must come back reranked within its deadline
and before the warm-up is done. On code where the warm-up holds the scorer (one unbroken job on the only scoring
thread, or a lock a search also takes) the search waits for it, runs into its deadline and answers ``timeout``.
"""

from __future__ import annotations

import random
import threading
import time

from reranking import MemoryScoreCache, Reranker
from reranking.dispatch import InProcessDispatcher
from reranking.scorers.bi_encoder import E5FallbackScorer
from search.service import RERANKED_STATUSES
from tests.shop_support import build_test_services
from tests.test_depth_policy import PacedScorer
from webapp import create_app

SECONDS_PER_PAIR = 0.01  # the warm-up below is >= 10 s of scoring; a live search's 100 pairs about 1 s
WARM_ROUNDS = 10


def test_a_search_during_the_warm_up_is_answered_promptly_and_reranked(shop_db_url):
    paced = PacedScorer(E5FallbackScorer(fallback_reason="tests: no cross-encoder weights"), SECONDS_PER_PAIR)
    dispatcher = InProcessDispatcher({"default": Reranker(paced, MemoryScoreCache())}, "default")
    services = build_test_services(shop_db_url, dispatcher=dispatcher)
    try:
        client = create_app(services=services).test_client()
        head = services.search.head_passages("headphones", 100)
        warm_pairs = 1 + WARM_ROUNDS * len(head)

        def warm_up() -> None:
            services.warm()  # what serve does before it listens
            services.warm_scorer()  # ... and what it leaves running in the background
            for n in range(WARM_ROUNDS):  # the head of a popular query, as the warm-head loop would queue it
                dispatcher.warm(f"warm-up head {n}", head)

        started = time.monotonic()
        warming = threading.Thread(target=warm_up, name="test-warm-up")
        warming.start()
        while not dispatcher.warm_pairs and time.monotonic() - started < 60:
            time.sleep(0.01)  # the background warming is scoring now
        assert dispatcher.warm_pairs, "the warm-up never started scoring"

        query = f"studio headphones {random.randint(1000, 9999)}"  # noqa: S311 - a fresh query: nothing cached
        asked = time.monotonic()
        response = client.get("/api/search", query_string={"q": query, "lang": "en", "limit": 10})
        waited = time.monotonic() - asked
        warmed_meanwhile = dispatcher.warm_pairs

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["rerank_status"] in RERANKED_STATUSES, (body["rerank_status"], waited)  # not timeout/shed
        assert body["rerank_depth"] >= 10
        assert body["timings_ms"]["rerank"] < services.settings.rerank_deadline_ms, body["timings_ms"]
        assert warmed_meanwhile < warm_pairs, "the search was answered only after the warm-up had finished"

        warming.join(60)
        finish = time.monotonic() + 120
        while dispatcher.warm_pairs < warm_pairs and time.monotonic() < finish:
            time.sleep(0.05)
        assert dispatcher.warm_pairs == warm_pairs  # and the warm-up completed after it
        warm_up_took = time.monotonic() - started
        # the whole request (first stage, gate, page: slow on a loaded machine) well inside the warm-up's time
        assert waited < warm_up_took / 2, f"the search took {waited:.2f} s, the warm-up {warm_up_took:.2f} s"
    finally:
        services.close()
