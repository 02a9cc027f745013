"""The facade callers use: documents in, ranked results with scores and original indices out."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reranking.cache import NullScoreCache, ScoreCache, budget_namespace, pair_cache_keys
from reranking.passages import Product, format_passage
from reranking.scorers.base import Scorer, ScorerInfo
from reranking.text import normalize_query

Document = str | Product | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ScoredRequest:
    """Raw scores for one (query, passages) request, input order, plus where they came from."""

    raw_scores: np.ndarray
    cache_hits: int
    cache_misses: int


@dataclass(frozen=True, slots=True)
class RankedDocument:
    index: int  # position in the caller's input
    score: float  # normalized when asked for, else raw
    raw_score: float
    text: str


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    results: list[RankedDocument]
    cache_hits: int
    cache_misses: int
    seconds: float
    scorer: ScorerInfo


def to_passage(document: Document) -> str:
    """Plain strings are used as given (API clients send finished text); products get formatted."""
    if isinstance(document, str):
        return document
    if isinstance(document, Product | Mapping):
        return format_passage(document)
    raise TypeError(f"cannot rerank a {type(document).__name__}; pass text, a Product or a mapping")


class Reranker:
    """Scorer + cache. Only pairs missing from the cache reach the model, each once."""

    def __init__(self, scorer: Scorer, cache: ScoreCache | None = None) -> None:
        self.scorer = scorer
        self.cache: ScoreCache = cache if cache is not None else NullScoreCache()

    @property
    def info(self) -> ScorerInfo:
        return self.scorer.info

    def passage_budget(self, requested: int | None) -> int | None:
        """The passage token budget a request is scored with: its own, else the scorer's (the deployment's)."""
        return requested if requested is not None else getattr(self.scorer, "passage_tokens", None)

    def namespace(self, passage_tokens: int | None = None) -> str:
        """The score-cache namespace for a request with this (requested) passage budget."""
        return budget_namespace(self.scorer.info.cache_namespace, self.passage_budget(passage_tokens))

    def score_requests(
        self, requests: Sequence[tuple[str, Sequence[str]]], budgets: Sequence[int | None] | None = None
    ) -> list[ScoredRequest]:
        """Score several requests in one pass: their cache misses share the model's batches.

        Duplicate (query, passage) pairs, within or across requests, are scored once. ``budgets``: each
        request's passage token budget (None: the deployment's); requests with different budgets share the
        call but not a forward pass (their passages differ), and their scores are cached apart.
        """
        resolved = [self.passage_budget(b) for b in (budgets or [None] * len(requests))]
        keyed: list[tuple[str, list[str], str]] = []
        for (query, passages), budget in zip(requests, resolved, strict=True):
            namespace = budget_namespace(self.scorer.info.cache_namespace, budget)
            keyed.append((normalize_query(query), pair_cache_keys(namespace, query, passages), query))
        all_keys = [key for _, keys, _ in keyed for key in keys]
        cached = dict(zip(all_keys, self.cache.get_many(all_keys), strict=True))

        to_score: dict[int | None, dict[str, tuple[str, str]]] = {}
        missing: set[str] = set()
        for (q, keys, _), (_, passages), budget in zip(keyed, requests, resolved, strict=True):
            for key, passage in zip(keys, passages, strict=True):
                if cached[key] is None and key not in missing:
                    missing.add(key)
                    to_score.setdefault(budget, {})[key] = (q, passage)
        for budget, pairs in to_score.items():
            if budget is None:
                fresh = self.scorer.score_pairs(list(pairs.values()))
            else:
                fresh = self.scorer.score_pairs(list(pairs.values()), passage_tokens=budget)
            new_scores = {key: float(s) for key, s in zip(pairs, fresh, strict=True)}
            self.cache.set_many(new_scores)
            cached.update(new_scores)

        results = []
        for _, keys, _ in keyed:
            raw = np.fromiter((cached[k] for k in keys), dtype=np.float32, count=len(keys))
            misses = sum(1 for k in keys if k in missing)
            results.append(ScoredRequest(raw, cache_hits=len(keys) - misses, cache_misses=misses))
        return results

    def score(self, query: str, passages: Sequence[str], passage_tokens: int | None = None) -> ScoredRequest:
        return self.score_requests([(query, passages)], [passage_tokens])[0]

    def uncached(self, query: str, passages: Sequence[str], passage_tokens: int | None = None) -> np.ndarray:
        """Which pairs would reach the model now (True) and which the cache answers (False): one lookup.

        For planning only (the cache may change before the pairs are scored); without a cache, all True.
        """
        keys = pair_cache_keys(self.namespace(passage_tokens), query, passages)
        return np.fromiter((value is None for value in self.cache.get_many(keys)), dtype=bool, count=len(keys))

    def rerank(
        self,
        query: str,
        documents: Sequence[Document],
        top_n: int | None = None,
        normalize: bool = True,
    ) -> RerankOutcome:
        """Documents sorted by relevance, best first; ties keep input order (stable)."""
        started = time.perf_counter()
        passages = [to_passage(d) for d in documents]
        scored = self.score(query, passages)
        shown = self.scorer.normalize(scored.raw_scores) if normalize else scored.raw_scores
        order = np.argsort(-shown, kind="stable")
        if top_n is not None:
            order = order[: max(0, top_n)]
        results = [RankedDocument(int(i), float(shown[i]), float(scored.raw_scores[i]), passages[i]) for i in order]
        return RerankOutcome(
            results, scored.cache_hits, scored.cache_misses, time.perf_counter() - started, self.scorer.info
        )
