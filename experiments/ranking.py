"""How a search is ranked, and who decides it: the contract between experiments and the search flow.

An experiment's variant *is* a ``RankingConfig``; the search flow (``search.service``) asks a
``VariantResolver`` for the unit's ``Assignment`` and ranks with the config it returns. Without
experiments, ``NoExperiment`` gives everyone the default config and no variant; ``experiments.resolver``
hashes the unit into a variant whose config turns reranking on/off, picks the model, the first-stage depth,
the device or the rerank depth. Plain data and a protocol: it lives here, below the search flow, so
experiments never import the search package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RankingConfig:
    rerank: bool = True
    #: Reranker model for this variant; None = the deployment's default scorer.
    model: str | None = None
    first_stage_top_k: int = 100
    #: "cuda", "cpu" or None (any worker).
    device_preference: str | None = None
    #: Overrides the deployment's rerank deadline for this variant.
    deadline_ms: int | None = None
    #: Most first-stage candidates this variant reranks (the head); the deadline-aware policy may score fewer.
    #: None = the deployment's ``SHOPRANK_RERANK_MAX_DEPTH``.
    rerank_max_depth: int | None = None
    #: Passage token budget for this variant (title and attributes kept, the description cut to fit): what a
    #: merchandiser A/Bs against speed. None = the deployment's ``SHOPRANK_RERANK_PASSAGE_TOKENS``.
    passage_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str | None
    variant: str | None
    config: RankingConfig
    #: Interleaving experiments: ranker B's config. The search then shows the team-draft merge of ``config``
    #: (team A) and this (team B), each product tagged with its team.
    interleave_with: RankingConfig | None = None


@dataclass(frozen=True, slots=True)
class SearchContext:
    query: str
    language: str | None
    surface: str  # "shop" (HTML pages) or "api"
    market: str | None = None  # ISO 3166 alpha-2, for experiment targeting


class VariantResolver(Protocol):
    def resolve(self, unit_id: str | None, context: SearchContext) -> Assignment:
        """The unit's (sticky) assignment for this search."""

    def invalidate(self) -> None:
        """Forget any cached experiment definitions (they changed): the next search reads them again."""


class NoExperiment:
    """No experiment running: the default config, no variant."""

    def __init__(self, config: RankingConfig) -> None:
        self.config = config

    def resolve(self, unit_id: str | None, context: SearchContext) -> Assignment:
        return Assignment(experiment=None, variant=None, config=self.config)

    def invalidate(self) -> None:
        """Nothing is cached."""
