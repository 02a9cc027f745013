"""When a query matches nothing: a relevance floor calibrated on nonsense, per catalog and reranker.

Dense retrieval always returns *something*, and every reranker has its own score scale (a cross-encoder gives
gibberish ~0.01, the e5 fallback ~0.92 with good matches at ~0.94), so a fixed threshold would be wrong for one
of them. Instead the floor asks the deployed reranker how well the catalog's best products match a few random
letter strings ("qxvbzt", ...), and uses two thresholds from those probes' best scores:

- *a match at all*: the query's best product must beat the best any probe reached, else the page says
  "nothing found" (this empties "xyzzyqwerty", "stapler" in a shop without staplers);
- *the tail*: of a query that matches, the products that score no better than the weakest probe's best are cut,
  which gives an honest ``total`` without dropping cross-lingual matches a small bi-encoder scores modestly
  (on the demo queries with the e5 fallback: 2 % of the products judged good fall under it, 25 % would under
  the strict threshold).
A word match is evidence too: the lexical retriever's first ``LEXICAL_EVIDENCE`` hits stay even below the floor
(a brand name such as "lego" can mean little to a small bi-encoder, but the word is in the product's title).

The floor is computed once per catalog snapshot and scorer; while it is unknown (the reranker timed out during
calibration, or a search fell back to first-stage order, whose fused scores have no absolute meaning) no floor
is applied and the shopper sees the first-stage candidates, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reranking.dispatch import RerankJob
from search.service import SearchHit, SearchResult, SearchService

log = logging.getLogger(__name__)

#: Letter strings that mean nothing in any language the shop sells in (Latin, Cyrillic, CJK-free on purpose:
#: CJK bigrams always share characters with some product).
NONSENSE_PROBES: tuple[str, ...] = (
    "xyzzyqwerty",
    "qxvbzt wrpl",
    "zzkrwplmf",
    "bvqjx wkrtz",
    "ploqvem xazt",
    "ывфщз кцуй",
)
#: Candidates per probe whose scores count: the best a nonsense query can reach on this catalog.
PROBE_DEPTH = 20
#: The lexical retriever's best hits kept even below the floor: the query's words are in them.
LEXICAL_EVIDENCE = 10
#: After a catalog change, how often a failed background recalibration is retried.
RETRY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Floor:
    match: float  # the query's best product must score above this (the best any nonsense probe reached)
    keep: float  # products at or below this are cut (the weakest probe's best)
    model_id: str | None
    fingerprint: tuple[Any, ...]


class RelevanceFloor:
    """Keeps the hits that score above what nonsense reaches; see the module docstring for why."""

    def __init__(self, service: SearchService, probes: Sequence[str] = NONSENSE_PROBES, margin: float = 0.0) -> None:
        self._service = service
        self._probes = tuple(probes)
        self._margin = margin
        self._floor: Floor | None = None
        self._attempted_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> Floor | None:
        """The floor for the current catalog snapshot (None when calibration failed).

        The first calibration runs in the calling search (a few rerank calls, once per process); after a catalog
        change the previous floor keeps serving while a background thread recalibrates, so no shopper waits.
        """
        fingerprint = self._service.index.fingerprint
        floor = self._floor
        if floor is not None and floor.fingerprint == fingerprint:
            return floor
        if floor is not None:
            due = time.monotonic() - self._attempted_at >= RETRY_SECONDS
            if due and self._lock.acquire(blocking=False):
                self._attempted_at = time.monotonic()
                threading.Thread(target=self._recalibrate, args=(fingerprint,), daemon=True).start()
            return floor
        with self._lock:
            if self._floor is None or self._floor.fingerprint != fingerprint:
                self._floor = self._calibrate(fingerprint) or self._floor
            return self._floor

    def _recalibrate(self, fingerprint: Any) -> None:
        try:
            self._floor = self._calibrate(fingerprint) or self._floor
        finally:
            self._lock.release()

    def _calibrate(self, fingerprint: Any) -> Floor | None:
        tops: list[float] = []
        model_id = None
        for probe in self._probes:
            first_stage = self._service.index.first_stage(probe, PROBE_DEPTH)
            passages = [first_stage.items[hit.sku].passage for hit in first_stage.hits]
            if not passages:
                continue
            try:
                outcome = self._service.dispatcher.dispatch(
                    RerankJob(query=probe, passages=passages, request_id="relevance-floor"),
                    self._service.deadline_ms / 1000,
                )
            except Exception as exc:  # calibration must never fail a search: no floor until it succeeds
                log.warning("relevance floor: calibration probe failed (%s); no floor for now", exc)
                return None
            if outcome.normalized_scores:
                tops.append(max(outcome.normalized_scores))
            model_id = (outcome.scorer or {}).get("model_id")
        if not tops:
            return None
        floor = Floor(max(tops) + self._margin, min(tops) + self._margin, model_id, fingerprint)
        log.info("relevance floor for %s: match above %.4f, keep above %.4f", model_id, floor.match, floor.keep)
        return floor

    def keep(self, result: SearchResult) -> list[SearchHit]:
        """The hits above the floor; all hits when no floor applies to this result (see the module docstring)."""
        if not result.reranked or not result.hits:
            return list(result.hits)
        floor = self.current()
        if floor is None or (result.scorer or {}).get("model_id") != floor.model_id:
            return list(result.hits)

        def lexical(hit: SearchHit) -> bool:
            return hit.retriever_ranks.get("lexical", LEXICAL_EVIDENCE + 1) <= LEXICAL_EVIDENCE

        def above(hit: SearchHit, threshold: float) -> bool:
            return hit.rerank_score is not None and hit.rerank_score > threshold

        if not any(above(hit, floor.match) or lexical(hit) for hit in result.hits):
            return []
        return [hit for hit in result.hits if above(hit, floor.keep) or lexical(hit)]
