"""Rerank API request validation and response shapes (Cohere v2 / Jina ``/v1`` / TEI), Flask-free.

Field names, defaults and sorting follow the public APIs so existing clients work
unchanged: the ``cohere`` SDK with ``base_url`` pointed here, LangChain and
LlamaIndex rerankers, TEI clients. Unknown request fields are ignored (clients
send extras such as ``rank_fields``), as the originals do.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webapp.errors import ApiError

#: Cohere bills one search unit per query per 100 documents.
DOCUMENTS_PER_SEARCH_UNIT = 100


@dataclass(frozen=True, slots=True)
class RerankRequest:
    query: str
    texts: list[str]
    ids: list[str | None]
    top_n: int | None
    return_documents: bool
    model: str | None
    raw_scores: bool = False


def _invalid(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(422, code, message)


def _bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be true or false")
    return value


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value: object = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(f"{name} must be a positive integer, got {value!r}")
    return value


def _query(body: Mapping[str, Any], max_chars: int) -> str:
    query = body.get("query")
    if query is None:
        raise _invalid("query is required")
    if not isinstance(query, str):
        raise _invalid(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise _invalid("query must not be empty or whitespace", "empty_query")
    if len(query) > max_chars:
        raise _invalid(f"query has {len(query)} characters; the limit is {max_chars}", "query_too_long")
    return query


def _document_list(value: Any, name: str, max_documents: int) -> list[Any]:
    if value is None:
        raise _invalid(f"{name} is required")
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list")
    if not value:
        raise _invalid(f"{name} must contain at least one document")
    if len(value) > max_documents:
        raise ApiError(
            413,
            "too_many_documents",
            f"{len(value)} documents in one request; the limit is {max_documents}. Split the request.",
        )
    return value


def parse_cohere(body: Mapping[str, Any], *, max_documents: int, max_query_chars: int, jina: bool) -> RerankRequest:
    """``{model, query, documents: [str | {text, id?}], top_n?, max_tokens_per_doc?, return_documents?}``.

    ``return_documents`` defaults to false (Cohere) or true (Jina's ``/v1/rerank``).
    """
    query = _query(body, max_query_chars)
    documents = _document_list(body.get("documents"), "documents", max_documents)
    texts: list[str] = []
    ids: list[str | None] = []
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            texts.append(doc)
            ids.append(None)
        elif isinstance(doc, Mapping) and isinstance(doc.get("text"), str):
            doc_id = doc.get("id")
            if doc_id is not None and not isinstance(doc_id, str):
                raise _invalid(f"documents[{i}].id must be a string", "invalid_document")
            texts.append(doc["text"])
            ids.append(doc_id)
        else:
            raise _invalid(
                f"documents[{i}] must be a string or an object with a string 'text', got {type(doc).__name__}",
                "invalid_document",
            )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _invalid("model must be a string")
    _positive_int(body, "max_tokens_per_doc")  # validated; passages are truncated to the model's window anyway
    return RerankRequest(
        query=query,
        texts=texts,
        ids=ids,
        top_n=_positive_int(body, "top_n"),
        return_documents=_bool(body, "return_documents", jina),
        model=model,
    )


def parse_tei(body: Mapping[str, Any], *, max_documents: int, max_query_chars: int) -> RerankRequest:
    """``{query, texts: [str], raw_scores?: false, return_text?: false, truncate?: true}``."""
    query = _query(body, max_query_chars)
    texts = _document_list(body.get("texts"), "texts", max_documents)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise _invalid(f"texts[{i}] must be a string, got {type(text).__name__}", "invalid_document")
    _bool(body, "truncate", True)  # passages are always truncated to the model's window
    return RerankRequest(
        query=query,
        texts=list(texts),
        ids=[None] * len(texts),
        top_n=None,
        return_documents=_bool(body, "return_text", False),
        model=None,
        raw_scores=_bool(body, "raw_scores", False),
    )


def ranked_order(scores: Sequence[float], top_n: int | None) -> list[int]:
    """Indices by descending score, ties in input order; cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return order[:top_n] if top_n is not None else order


def search_units(document_count: int) -> int:
    return max(1, math.ceil(document_count / DOCUMENTS_PER_SEARCH_UNIT))


def cohere_response(req: RerankRequest, scores: Sequence[float], *, jina: bool, model: str | None) -> dict[str, Any]:
    results = []
    for i in ranked_order(scores, req.top_n):
        result: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if req.return_documents:
            document: dict[str, Any] = {"text": req.texts[i]}
            if req.ids[i] is not None:
                document["id"] = req.ids[i]
            result["document"] = document
        results.append(result)
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "results": results,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": search_units(len(req.texts))}},
    }
    if jina:  # Jina clients read model and usage; Cohere clients ignore them
        body["model"] = model
        body["usage"] = {"total_tokens": sum(len(t) for t in req.texts) // 4 + len(req.query) // 4}
    return body


def tei_response(req: RerankRequest, scores: Sequence[float]) -> list[dict[str, Any]]:
    out = []
    for i in ranked_order(scores, None):
        item: dict[str, Any] = {"index": i, "score": float(scores[i])}
        if req.return_documents:
            item["text"] = req.texts[i]
        out.append(item)
    return out
