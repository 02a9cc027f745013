"""The relevance floor: calibrated on nonsense probes, never a reason for a search to fail."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

from reranking.dispatch import DispatchResult, RerankUnavailable
from search.index import CatalogItem
from search.relevance_floor import NONSENSE_PROBES, RelevanceFloor
from search.service import SearchHit, SearchResult


def _item(n: int) -> CatalogItem:
    return CatalogItem(n, f"S{n}", "t", "d", Decimal(1), "USD", "c", "en", None, None, 1, {}, f"passage {n}")


@dataclass
class Index:
    """What the floor reads of the index: its fingerprint and a first stage."""

    fingerprint: tuple
    items: list = field(default_factory=lambda: [_item(n) for n in range(5)])

    def first_stage(self, query, top_k, filters=None):
        hits = [SimpleNamespace(sku=i.sku) for i in self.items]
        return SimpleNamespace(hits=hits, items={i.sku: i for i in self.items})


class Dispatcher:
    """Probe i's best score is 0.10 + 0.01 * i; can be switched to failing or held back."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.release = threading.Event()
        self.release.set()

    def dispatch(self, job, deadline_seconds):
        self.release.wait(5)
        if self.fail:
            raise RerankUnavailable("no worker")
        top = 0.10 + 0.01 * NONSENSE_PROBES.index(job.query)
        self.calls += 1
        scores = [top] + [0.01] * (len(job.passages) - 1)
        return DispatchResult(scores, scores, 0, 0, {"model_id": "m"}, "test", 0.0)


def _service(dispatcher, fingerprint=(1,)):
    return SimpleNamespace(index=Index(fingerprint), dispatcher=dispatcher, deadline_ms=1000)


def _result(scores, lexical_ranks=None, reranked=True) -> SearchResult:
    hits = [
        SearchHit(_item(n), n + 1, s, n + 1, s, s, {"lexical": lexical_ranks[n]} if lexical_ranks else {})
        for n, s in enumerate(scores)
    ]
    return SearchResult("q", None, hits, len(hits), None, None, reranked, "ok" if reranked else "timeout",
                        {"model_id": "m"}, {}, None, "imp")  # fmt: skip


def test_match_and_tail_thresholds_come_from_the_probes():
    floor = RelevanceFloor(_service(Dispatcher()))
    current = floor.current()
    top = 0.10 + 0.01 * (len(NONSENSE_PROBES) - 1)
    assert (round(current.match, 6), round(current.keep, 6)) == (round(top, 6), 0.10)
    assert floor.keep(_result([top, 0.12, 0.05])) == []  # nothing beats nonsense: no match at all
    kept = floor.keep(_result([0.9, 0.12, 0.10, 0.05]))
    assert [h.rerank_score for h in kept] == [0.9, 0.12]  # a match; the tail at or below the weakest probe goes
    kept = floor.keep(_result([0.05, 0.04], lexical_ranks=[1, 30]))
    assert [h.rerank_score for h in kept] == [0.05]  # the query's words in a title are evidence too


def test_without_scores_or_calibration_nothing_is_cut():
    failing = Dispatcher()
    failing.fail = True
    floor = RelevanceFloor(_service(failing))
    assert floor.current() is None
    assert len(floor.keep(_result([0.01, 0.01]))) == 2
    assert len(RelevanceFloor(_service(Dispatcher())).keep(_result([0.01], reranked=False))) == 1


def test_a_catalog_change_recalibrates_in_the_background_while_the_old_floor_serves():
    dispatcher = Dispatcher()
    service = _service(dispatcher)
    floor = RelevanceFloor(service)
    old = floor.current()
    calls = dispatcher.calls
    dispatcher.release.clear()  # the recalibration will wait
    service.index = Index((2,))
    assert floor.current() is old  # served at once, not after the probes
    dispatcher.release.set()
    for _ in range(100):
        if floor.current().fingerprint == (2,):
            break
        threading.Event().wait(0.02)
    assert floor.current().fingerprint == (2,) and dispatcher.calls == calls + len(NONSENSE_PROBES)
