"""shoprank's reranking library: passages, model loading, batching, scoring, caching.

Framework-free on purpose (no Flask, no Celery): the web tier, the workers, the CLI
and the benchmarks all call the same code.
"""

from reranking.cache import (
    MemoryScoreCache,
    NullScoreCache,
    RedisScoreCache,
    ScoreCache,
    cached_scores,
    pair_cache_key,
    pair_cache_keys,
)
from reranking.loading import ScorerSpec, load_scorer
from reranking.model_source import DEFAULT_MODEL, ModelUnavailableError
from reranking.passages import PASSAGE_FORMAT_VERSION, Product, format_passage
from reranking.reranker import RankedDocument, Reranker, RerankOutcome, ScoredRequest
from reranking.scorers.base import Scorer, ScorerInfo

__all__ = [
    "DEFAULT_MODEL",
    "PASSAGE_FORMAT_VERSION",
    "MemoryScoreCache",
    "ModelUnavailableError",
    "NullScoreCache",
    "Product",
    "RankedDocument",
    "RedisScoreCache",
    "RerankOutcome",
    "Reranker",
    "ScoreCache",
    "ScoredRequest",
    "Scorer",
    "ScorerInfo",
    "ScorerSpec",
    "format_passage",
    "load_scorer",
    "cached_scores",
    "pair_cache_key",
    "pair_cache_keys",
]
