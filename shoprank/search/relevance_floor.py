"""When a query matches nothing: a relevance floor calibrated on nonsense, per catalog and reranker.

Dense retrieval always returns *something*, and every reranker has its own score scale (a cross-encoder gives
gibberish ~0.01, the e5 fallback ~0.92 with good matches at ~0.94), so a fixed threshold would be wrong for one
of them. Instead the floor asks the deployed reranker how well the catalog's best products match a few random
letter strings ("qxvbzt", ...): a product scoring no better than the best match for gibberish is not a match.
That cuts the unrelated tail of a real query (an honest ``total``) and empties a nonsense query entirely.
A word match is evidence too: the lexical retriever's first ``LEXICAL_EVIDENCE`` hits stay even below the floor
(a brand name such as "lego" can mean little to a small bi-encoder, but the word is in the product's title).

The floor is computed once per catalog snapshot and scorer; while it is unknown (the reranker timed out during
calibration, or a search fell back to first-stage order, whose fused scores have no absolute meaning) no floor
is applied and the shopper sees the first-stage candidates, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reranking.dispatch import RerankJob
from shoprank.search.service import SearchHit, SearchResult, SearchService

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


@dataclass(frozen=True, slots=True)
class Floor:
    threshold: float
    model_id: str | None
    fingerprint: tuple[Any, ...]


class RelevanceFloor:
    """Keeps the hits that score above what nonsense reaches; see the module docstring for why."""

    def __init__(self, service: SearchService, probes: Sequence[str] = NONSENSE_PROBES, margin: float = 0.0) -> None:
        self._service = service
        self._probes = tuple(probes)
        self._margin = margin
        self._floor: Floor | None = None
        self._lock = threading.Lock()

    def current(self) -> Floor | None:
        """The floor for the current catalog snapshot, calibrating it on first use (None when that failed)."""
        snapshot = self._service.index.snapshot
        floor = self._floor
        if floor is not None and floor.fingerprint == snapshot.fingerprint:
            return floor
        with self._lock:
            if self._floor is not None and self._floor.fingerprint == snapshot.fingerprint:
                return self._floor
            self._floor = self._calibrate(snapshot)
            return self._floor

    def _calibrate(self, snapshot: Any) -> Floor | None:
        best: float | None = None
        model_id = None
        for probe in self._probes:
            hits = snapshot.retriever.retrieve(probe, PROBE_DEPTH).hits
            passages = [snapshot.by_sku[hit.sku].passage for hit in hits if hit.sku in snapshot.by_sku]
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
            top = max(outcome.normalized_scores, default=None)
            if top is not None:
                best = top if best is None else max(best, top)
            model_id = (outcome.scorer or {}).get("model_id")
        if best is None:
            return None
        log.info("relevance floor for %s: %.4f", model_id, best + self._margin)
        return Floor(best + self._margin, model_id, snapshot.fingerprint)

    def keep(self, result: SearchResult) -> list[SearchHit]:
        """The hits above the floor; all hits when no floor applies to this result (see the module docstring)."""
        if not result.reranked or not result.hits:
            return list(result.hits)
        floor = self.current()
        if floor is None or (result.scorer or {}).get("model_id") != floor.model_id:
            return list(result.hits)
        return [
            hit
            for hit in result.hits
            if (hit.rerank_score is not None and hit.rerank_score > floor.threshold)
            or hit.retriever_ranks.get("lexical", LEXICAL_EVIDENCE + 1) <= LEXICAL_EVIDENCE
        ]
