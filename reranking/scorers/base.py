"""What every scorer promises: raw scores in input order, a description, counters."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

ScorerKind = Literal["cross-encoder", "bi-encoder-fallback"]


@dataclass(frozen=True, slots=True)
class ScorerInfo:
    """Which model is really answering; shown in ``/health``, logs and worker heartbeats."""

    model_id: str
    revision: str
    kind: ScorerKind
    backend: str
    device: str
    dtype: str
    quantized: bool
    max_length: int
    fallback_reason: str | None = None

    @property
    def cache_namespace(self) -> str:
        """Everything that changes a raw score for the same text; part of every cache key."""
        return f"{self.model_id}@{self.revision}|{self.backend}|{self.dtype}|{self.max_length}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _looks_like_a_path(model_id: str) -> bool:
    """A local directory (``/srv/models/x``, ``./x``, ``~/x``, ``C:\\x``), not a hub id like ``BAAI/bge-…``."""
    return model_id.startswith(("/", ".", "~", "\\")) or (len(model_id) > 2 and model_id[1:3] in (":\\", ":/"))


def public_scorer(scorer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scorer description shoppers' answers carry: a local model directory shown by its name only.

    Why: ``/api/search`` and ``/search`` are public, and a file-system path tells an attacker about the host
    (``/health`` hides it for the same reason); the ops page and logs keep the full path.
    """
    if scorer is None:
        return None
    model_id = str(scorer.get("model_id") or "")
    if not _looks_like_a_path(model_id):
        return scorer
    name = model_id.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    shown = dict(scorer)
    shown["model_id"] = name
    for key, value in scorer.items():
        if isinstance(value, str) and model_id in value and key != "model_id":
            shown[key] = value.replace(model_id, name)
    return shown


@dataclass
class ScorerStats:
    """Monotonic counters; read them for metrics and for tests that count model work."""

    pairs_scored: int = 0
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, pairs: int, batches: int, tokens: int, padded_tokens: int, seconds: float) -> None:
        with self._lock:
            self.pairs_scored += pairs
            self.batches += batches
            self.tokens += tokens
            self.padded_tokens += padded_tokens
            self.seconds += seconds

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "pairs_scored": self.pairs_scored,
                "batches": self.batches,
                "tokens": self.tokens,
                "padded_tokens": self.padded_tokens,
                "seconds": self.seconds,
            }


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """Sigmoid in float32 whatever the model ran in: fp16 saturates to 1.0 near logit 8 and ties results."""
    raw = np.asarray(raw, dtype=np.float32)
    squashed: np.ndarray = (1.0 / (1.0 + np.exp(-raw, dtype=np.float32))).astype(np.float32)
    return squashed


class Scorer(ABC):
    """Scores (query, passage) pairs. Implementations must be safe to call from several threads."""

    info: ScorerInfo

    def __init__(self) -> None:
        self.stats = ScorerStats()
        #: The deployment's passage token budget (``SHOPRANK_RERANK_PASSAGE_TOKENS``); None = the model's window.
        #: A request's own budget (an experiment variant's) replaces it.
        self.passage_tokens: int | None = None

    @abstractmethod
    def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        max_batch_size: int | None = None,
        passage_tokens: int | None = None,
    ) -> np.ndarray:
        """Raw scores (float32, one per pair, input order). ``max_batch_size`` caps pairs per forward pass;
        ``passage_tokens`` is the passage token budget, already resolved (None: the model's window)."""

    def effective_passage_tokens(self, requested: int | None) -> int | None:
        """The budget a request is scored with: its own, else the deployment's. Part of the score-cache key."""
        return requested if requested is not None else self.passage_tokens

    @abstractmethod
    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores into (0, 1), monotonically."""

    def describe(self) -> dict[str, Any]:
        return self.info.as_dict()

    def warm_up(self) -> None:
        """One tiny forward pass so the first real request does not pay lazy initialisation."""
        self.score_pairs([("warm up", "Title: warm up")])

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        normalize: bool = False,
        batch_size: int | None = None,
        **_: Any,
    ) -> float | list[float]:
        """FlagReranker's call shape: one ``[q, p]`` pair → a float, a list of pairs → a list."""
        if not sentence_pairs:
            return []
        single = isinstance(sentence_pairs[0], str)
        if single:
            if len(sentence_pairs) != 2:
                raise ValueError("a single pair must be [query, passage]")
            pairs = [(str(sentence_pairs[0]), str(sentence_pairs[1]))]
        else:
            pairs = []
            for pair in sentence_pairs:
                if isinstance(pair, str) or len(pair) != 2:
                    raise ValueError("each pair must be [query, passage]")
                pairs.append((str(pair[0]), str(pair[1])))
        scores = self.score_pairs(pairs, max_batch_size=batch_size)
        if normalize:
            scores = self.normalize(scores)
        values = [float(s) for s in scores]
        return values[0] if single else values
