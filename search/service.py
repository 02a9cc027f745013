"""The search flow: query → first-stage candidates → passages → rerank under a deadline → ranked products.

The reranker can never fail a search: a timeout, a worker error, no worker, or a
broken dispatcher all give the first-stage order with ``reranked: false``, counted
by reason in ``SearchStats``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from experiments.interleaving import Team, interleave_for
from experiments.ranking import Assignment, RankingConfig, SearchContext, VariantResolver
from reranking.dispatch import (
    RerankDispatcher,
    RerankError,
    RerankJob,
    RerankRejected,
    RerankShed,
    RerankTimeout,
    RerankUnavailable,
)
from reranking.scorers.base import public_scorer
from reranking.text import normalize_query
from search.filters import FxRates, SearchFilters
from search.index import CatalogIndex, CatalogItem, FirstStage
from search.retrieval import RRF_K, FusedHit

log = logging.getLogger(__name__)

#: ``retriever_ranks`` key of a candidate whose first stage ran at the client (``rank_candidates``).
CLIENT_RETRIEVER = "client"


class SearchInputError(ValueError):
    """Bad search input; ``code`` is machine-readable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_query(raw: Any, max_chars: int) -> str:
    if not isinstance(raw, str):
        raise SearchInputError("invalid_query", "the query must be a string")
    query = normalize_query(raw)
    if not query:
        raise SearchInputError("empty_query", "the query is empty; type what you are looking for")
    if len(query) > max_chars:
        raise SearchInputError("query_too_long", f"the query has {len(query)} characters; the limit is {max_chars}")
    return query


@dataclass(frozen=True, slots=True)
class SearchHit:
    item: CatalogItem
    rank: int  # 1-based, as shown
    score: float  # rerank score (0..1) when reranked, else the first-stage RRF score
    first_stage_rank: int
    first_stage_score: float
    rerank_score: float | None
    retriever_ranks: dict[str, int]
    team: str | None = None  # interleaving: "A" or "B" (the ranker that placed it); None otherwise


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    language: str | None
    hits: list[SearchHit]
    candidates: int
    experiment: str | None
    variant: str | None
    reranked: bool
    #: ok | partial | shed | timeout | unavailable | rejected | error | disabled | no_candidates (DESIGN §7)
    rerank_status: str
    scorer: dict[str, Any] | None
    timings_ms: dict[str, float]
    request_id: str | None
    impression_id: str
    interleaved: bool = False  # team-draft merge of two rankers; hits carry their team
    cache_hits: int = 0  # pair scores the rerank read from the score cache (all rankings of this search)
    cache_misses: int = 0  # pair scores the model computed
    #: How many candidates the reranker actually scored (0 when nothing was reranked); the experiment report's
    #: delivery check compares it with the variant's configured depth.
    rerank_depth: int = 0
    #: The query with misspelt words corrected when the first stage searched with corrections ("did you mean").
    did_you_mean: str | None = None


@dataclass
class SearchStats:
    """Counters for /ready, the ops page and tests."""

    searches: int = 0
    reranked: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: str) -> None:
        with self._lock:
            self.searches += 1
            if status in RERANKED_STATUSES:
                self.reranked += 1
            elif status not in ("disabled", "no_candidates"):  # shed counts here: visible load shedding
                self.fallbacks[status] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"searches": self.searches, "reranked": self.reranked, "fallbacks": dict(self.fallbacks)}


#: Statuses whose results are (at least partly) in reranked order.
RERANKED_STATUSES = ("ok", "partial")


def _fallback_status(exc: BaseException) -> str:
    if isinstance(exc, RerankShed):
        return "shed"
    if isinstance(exc, RerankTimeout):
        return "timeout"
    if isinstance(exc, RerankUnavailable):
        return "unavailable"
    if isinstance(exc, RerankRejected):
        return "rejected"
    return "error"


class SearchService:
    def __init__(
        self,
        index: CatalogIndex,
        dispatcher: RerankDispatcher,
        resolver: VariantResolver,
        *,
        deadline_ms: int,
        max_query_chars: int = 1000,
        fx: FxRates | None = None,
        max_rerank_depth: int | None = None,
        min_rerank_depth: int = 10,
    ) -> None:
        self.index = index
        #: Converts prices for price filters (and, upstream, for display); the experiments' revenue table.
        self.fx = fx or FxRates()
        #: Deadline-aware depth: the dispatcher reranks a head of between ``min_rerank_depth`` and the variant's
        #: ``rerank_max_depth`` (else this, else every candidate) first-stage candidates, as the pool allows.
        self.max_rerank_depth = max_rerank_depth
        self.min_rerank_depth = min_rerank_depth
        self.dispatcher = dispatcher
        self.resolver = resolver
        self.deadline_ms = deadline_ms
        self.max_query_chars = max_query_chars
        self.stats = SearchStats()
        #: Called with every finished ``SearchResult`` (metrics, the ops window); an observer's error is logged.
        self.observers: list[Callable[[SearchResult], None]] = []

    def search(
        self,
        query: str,
        *,
        limit: int,
        language: str | None = None,
        unit_id: str | None = None,
        request_id: str | None = None,
        surface: str = "api",
        market: str | None = None,
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Rank the catalog for ``query``; ``filters`` restrict the first stage itself (never a post-filter)."""
        started = time.perf_counter()
        query = clean_query(query, self.max_query_chars)
        assignment: Assignment = self.resolver.resolve(unit_id, SearchContext(query, language, surface, market))
        configs = _configs(assignment)
        timings: dict[str, float] = {}

        top_k = max(config.first_stage_top_k for config in configs)
        first_stage, candidates = self._first_stage(query, top_k, filters, language)
        timings["first_stage"] = sum(first_stage.timings_ms.values())
        timings.update({f"first_stage_{name}": ms for name, ms in first_stage.timings_ms.items()})
        return self._after_first_stage(
            query, assignment, candidates, limit, language, unit_id, request_id, timings, started,
            did_you_mean=first_stage.did_you_mean,
        )  # fmt: skip

    def rank_candidates(
        self,
        query: str,
        candidates: list[CatalogItem],
        *,
        limit: int,
        language: str | None = None,
        unit_id: str | None = None,
        request_id: str | None = None,
        market: str | None = None,
        surface: str = "api",
    ) -> SearchResult:
        """Rank a first stage run elsewhere (a shop's Elasticsearch, OpenSearch, Solr, Vespa): ``POST /api/rank``.

        Everything after the first stage is the search's own code, so a variant, interleaving, the fallback to
        the given order and the impression id behave exactly as for ``search``. The client's order is the first
        stage: candidate *i* (0-based) has first-stage rank *i + 1* and the score a one-list RRF gives it, and
        its ``retriever_ranks`` are ``{"client": i + 1}``.
        """
        started = time.perf_counter()
        query = clean_query(query, self.max_query_chars)
        seen: set[str] = set()
        for position, item in enumerate(candidates, start=1):
            if item.sku in seen:  # the team-draft merge and the impression's items tell products apart by sku
                raise SearchInputError("duplicate_sku", f"candidate {position} repeats the sku {item.sku!r}")
            seen.add(item.sku)
        assignment = self.resolver.resolve(unit_id, SearchContext(query, language, surface, market))
        supplied = [
            (FusedHit(item.sku, 1.0 / (RRF_K + position), {CLIENT_RETRIEVER: position}), item)
            for position, item in enumerate(candidates, start=1)
        ]
        return self._after_first_stage(query, assignment, supplied, limit, language, unit_id, request_id, {}, started)

    def _after_first_stage(
        self,
        query: str,
        assignment: Assignment,
        candidates: list[tuple[FusedHit, CatalogItem]],
        limit: int,
        language: str | None,
        unit_id: str | None,
        request_id: str | None,
        timings: dict[str, float],
        started: float,
        did_you_mean: str | None = None,
    ) -> SearchResult:
        """Everything after the first stage, shared by ``search`` and ``rank_candidates``: passages, one ranking
        per config (two when interleaving), the team-draft merge, the result, stats and observers."""
        configs = _configs(assignment)
        mark = time.perf_counter()
        passages = [item.passage for _, item in candidates]
        timings["passages"] = (time.perf_counter() - mark) * 1000

        rankings = [
            self._rank(
                query, candidates, passages, config, request_id, timings, "rerank" if n == 0 else "rerank_b", started
            )
            for n, config in enumerate(configs)
        ]
        status = _combined_status([ranking.status for ranking in rankings])
        # shoppers' answers name a local model directory by its name only (reranking.scorers.base.public_scorer)
        scorer = public_scorer(next((ranking.scorer for ranking in rankings if ranking.scorer is not None), None))

        def hit(position: int, i: int, ranking: _Ranking, team: str | None) -> SearchHit:
            fused, item = candidates[i]
            score = ranking.scores.get(i) if ranking.scores is not None else None
            return SearchHit(
                item=item,
                rank=position,
                score=score if score is not None else fused.score,
                first_stage_rank=i + 1,
                first_stage_score=fused.score,
                rerank_score=score,
                retriever_ranks=dict(fused.ranks),
                team=team,
            )

        interleaved = len(rankings) == 2 and bool(unit_id) and bool(assignment.experiment)
        if interleaved:
            skus = [item.sku for _, item in candidates]
            position_of = {sku: i for i, sku in enumerate(skus)}
            merged = interleave_for(
                assignment.experiment or "",
                unit_id or "",
                query,
                [skus[i] for i in rankings[0].order],
                [skus[i] for i in rankings[1].order],
                length=limit,
            )
            hits = []
            for entry in merged.items:
                source = rankings[1] if entry.team is Team.B else rankings[0]
                team = entry.team.value if entry.team is not None else None
                hits.append(hit(entry.position + 1, position_of[entry.item], source, team))
        else:
            hits = [hit(rank, i, rankings[0], None) for rank, i in enumerate(rankings[0].order[:limit], start=1)]
        self.stats.record(status)
        timings["total"] = (time.perf_counter() - started) * 1000
        result = SearchResult(
            query=query,
            language=language,
            hits=hits,
            candidates=len(candidates),
            experiment=assignment.experiment,
            variant=assignment.variant,
            reranked=status in RERANKED_STATUSES,
            rerank_status=status,
            scorer=scorer,
            timings_ms={name: round(ms, 2) for name, ms in timings.items()},
            request_id=request_id,
            impression_id=str(uuid.uuid4()),
            interleaved=interleaved,
            cache_hits=sum(ranking.cache_hits for ranking in rankings),
            cache_misses=sum(ranking.cache_misses for ranking in rankings),
            rerank_depth=max(ranking.depth for ranking in rankings),
            did_you_mean=did_you_mean,
        )
        for observe in self.observers:
            try:
                observe(result)
            except Exception:  # observability must never fail a search
                log.exception("search observer %r failed", observe)
        return result

    def head_passages(self, query: str, depth: int) -> list[str]:
        """The passages a search for ``query`` would send to the reranker, head first (for cache warming)."""
        _, candidates = self._first_stage(clean_query(query, self.max_query_chars), depth)
        return [item.passage for _, item in candidates[:depth]]

    def _first_stage(
        self, query: str, top_k: int, filters: SearchFilters | None = None, language: str | None = None
    ) -> tuple[FirstStage, list[tuple[FusedHit, CatalogItem]]]:
        first_stage = self.index.refresh_if_changed().first_stage(query, top_k, filters, language=language)
        return first_stage, [(hit, first_stage.items[hit.sku]) for hit in first_stage.hits]

    def _rank(
        self,
        query: str,
        candidates: list[tuple[Any, CatalogItem]],
        passages: list[str],
        config: RankingConfig,
        request_id: str | None,
        timings: dict[str, float],
        timing_name: str,
        started: float,
    ) -> _Ranking:
        """One ranker's order of the first ``config.first_stage_top_k`` candidates (reranked when it asks).

        The deadline counts from when the search started (``started``, a ``perf_counter`` stamp), not from
        here: time the first stage took is time the rerank no longer has, so a search answers within its
        deadline however slow the first stage was under load.
        """
        count = min(len(candidates), config.first_stage_top_k)
        order = list(range(count))
        if not config.rerank:
            return _Ranking(order, None, "disabled", None)
        if not count:
            return _Ranking(order, None, "no_candidates", None)
        mark = time.perf_counter()
        deadline_ms = config.deadline_ms or self.deadline_ms
        left_seconds = max(0.0, deadline_ms / 1000 - (mark - started))
        depth = min(count, config.rerank_max_depth or self.max_rerank_depth or count)
        min_depth = min(self.min_rerank_depth, depth)
        job = RerankJob(
            query=query,
            passages=passages[:depth],
            model=config.model,
            request_id=request_id,
            device_preference=config.device_preference,
            deadline_at=time.time() + left_seconds,
            min_depth=min_depth,
            passage_tokens=config.passage_tokens,
        )
        try:
            result = self.dispatcher.dispatch(job, left_seconds)
            scored = len(result.normalized_scores)
            if not 0 < scored <= depth or (scored < depth and not result.partial and scored < min_depth):
                raise RerankError(f"{scored} scores for {depth} passages")
            scores = {i: float(score) for i, score in enumerate(result.normalized_scores)}
        except Exception as exc:  # any dispatcher failure, typed or not, keeps first-stage order
            status = _fallback_status(exc)
            log.warning("rerank fallback (%s) for request %s: %s; serving first-stage order", status, request_id, exc)
            timings[timing_name] = (time.perf_counter() - mark) * 1000
            return _Ranking(order, None, status, None)
        timings[timing_name] = (time.perf_counter() - mark) * 1000
        # The reranked head first (stable: ties keep first-stage order), then the rest in first-stage order.
        head = sorted(range(scored), key=lambda i: -scores[i])
        status = "partial" if result.partial else "ok"
        return _Ranking(
            head + order[scored:], scores, status, result.scorer, result.cache_hits, result.cache_misses, scored
        )


@dataclass(frozen=True, slots=True)
class _Ranking:
    order: list[int]  # candidate indexes, best first
    scores: dict[int, float] | None  # rerank score per candidate index, when reranked
    status: str
    scorer: dict[str, Any] | None
    cache_hits: int = 0
    cache_misses: int = 0
    depth: int = 0  # candidates the reranker scored


def _configs(assignment: Assignment) -> list[RankingConfig]:
    """The rankers a search runs: the variant's, plus ranker B's when it interleaves."""
    if assignment.interleave_with is None:
        return [assignment.config]
    return [assignment.config, assignment.interleave_with]


def _combined_status(statuses: list[str]) -> str:
    """One status for the page: a fallback anywhere wins, then ``partial``, ``ok``, then why nothing was reranked."""
    for status in statuses:
        if status not in (*RERANKED_STATUSES, "disabled", "no_candidates"):
            return status
    for status in ("partial", "ok"):
        if status in statuses:
            return status
    return statuses[0]
