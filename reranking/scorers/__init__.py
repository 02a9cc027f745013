"""Scorer implementations: torch cross-encoder, and the e5 bi-encoder fallback."""

from reranking.scorers.base import Scorer, ScorerInfo, ScorerStats, sigmoid

__all__ = ["Scorer", "ScorerInfo", "ScorerStats", "sigmoid"]
