"""Rerank API contracts (Cohere v2 ``/v2/rerank``, Jina ``/v1/rerank``, TEI ``/rerank``) as pydantic models.

Field names, defaults and sorting follow the public APIs so existing clients work unchanged: the ``cohere`` SDK
with ``base_url`` pointed here, LangChain and LlamaIndex rerankers, TEI clients. Unknown request fields are
ignored (clients send extras such as ``rank_fields``), as the originals do. Each validator raises the error code
and message these endpoints always gave (``shoprank.contracts``); the first problem is the answer, a 422 (413
for too many documents). Limits come from the settings in the validation context.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, ValidationError, ValidationInfo

from shoprank.contracts import limit, problem, problems, setting
from webapp.errors import ApiError

#: Cohere bills one search unit per query per 100 documents.
DOCUMENTS_PER_SEARCH_UNIT = 100
M = TypeVar("M", bound=BaseModel)
#: Error codes that are not a 422.
_STATUS = {"too_many_documents": 413}


def _query(value: Any, info: ValidationInfo) -> str:
    if value is None:
        raise problem("invalid_request", "query is required")
    if not isinstance(value, str):
        raise problem("invalid_request", f"query must be a string, got {type(value).__name__}")
    if not value.strip():
        raise problem("empty_query", "query must not be empty or whitespace")
    max_chars = setting(info, "max_query_chars")
    if len(value) > max_chars:
        raise problem("query_too_long", f"query has {len(value)} characters; the limit is {max_chars}")
    return value


def _document_list(value: Any, info: ValidationInfo) -> list[Any]:
    name = info.field_name
    if value is None:
        raise problem("invalid_request", f"{name} is required")
    if not isinstance(value, list):
        raise problem("invalid_request", f"{name} must be a list")
    if not value:
        raise problem("invalid_request", f"{name} must contain at least one document")
    max_documents = setting(info, "rerank_max_documents")
    if len(value) > max_documents:
        raise problem(
            "too_many_documents",
            f"{len(value)} documents in one request; the limit is {max_documents}. Split the request.",
        )
    return value


def _cohere_documents(value: Any, info: ValidationInfo) -> list[Any]:
    documents = _document_list(value, info)
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            continue
        if isinstance(doc, Mapping) and isinstance(doc.get("text"), str):
            if doc.get("id") is not None and not isinstance(doc.get("id"), str):
                raise problem("invalid_document", f"documents[{i}].id must be a string")
            continue
        raise problem(
            "invalid_document",
            f"documents[{i}] must be a string or an object with a string 'text', got {type(doc).__name__}",
        )
    return documents


def _tei_texts(value: Any, info: ValidationInfo) -> list[Any]:
    texts = _document_list(value, info)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise problem("invalid_document", f"texts[{i}] must be a string, got {type(text).__name__}")
    return texts


def _positive_int(value: Any, info: ValidationInfo) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise problem("invalid_request", f"{info.field_name} must be a positive integer, got {value!r}")
    return int(value)


def _flag(value: Any, info: ValidationInfo) -> bool | None:
    """``None`` (absent or null) means the field's default, which differs between Cohere and Jina."""
    if value is not None and not isinstance(value, bool):
        raise problem("invalid_request", f"{info.field_name} must be true or false")
    return value


def _optional_string(value: Any, info: ValidationInfo) -> str | None:
    if value is not None and not isinstance(value, str):
        raise problem("invalid_request", f"{info.field_name} must be a string")
    return value


Query = Annotated[
    str,
    BeforeValidator(_query),
    Field(
        min_length=1,
        description="What to rank the documents for.",
        json_schema_extra=limit("maxLength", "max_query_chars"),
    ),
]
PositiveInt = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_positive_int), Field(default=None)]
Flag = Annotated[bool | None, BeforeValidator(_flag), Field(default=None)]


class CohereDocument(BaseModel):
    """A document as an object; ``id`` comes back with it when documents are returned."""

    text: str
    id: str | None = None


class CohereRerankRequest(BaseModel):
    """``POST /v2/rerank`` (Cohere v2) and ``POST /v1/rerank`` (Jina): rank ``documents`` for ``query``."""

    model_config = ConfigDict(extra="ignore", title="CohereRerankRequest")

    query: Query
    documents: Annotated[
        list[str | CohereDocument],
        BeforeValidator(_cohere_documents),
        Field(min_length=1, json_schema_extra=limit("maxItems", "rerank_max_documents")),
    ]
    model: Annotated[
        str | None,
        BeforeValidator(_optional_string),
        Field(default=None, description="Echoed back (Jina); the deployment's model does the scoring."),
    ]
    max_tokens_per_doc: Annotated[
        PositiveInt, Field(description="Accepted; passages are truncated to the model's window anyway.")
    ]
    top_n: Annotated[PositiveInt, Field(description="Return only the best top_n results.")]
    return_documents: Annotated[Flag, Field(description="Default false on /v2/rerank, true on /v1/rerank (Jina).")]

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]

    def ids(self) -> list[str | None]:
        return [None if isinstance(d, str) else d.id for d in self.documents]


class TeiRerankRequest(BaseModel):
    """``POST /rerank`` (Hugging Face Text Embeddings Inference)."""

    model_config = ConfigDict(extra="ignore", title="TeiRerankRequest")

    query: Query
    texts: Annotated[
        list[str],
        BeforeValidator(_tei_texts),
        Field(min_length=1, json_schema_extra=limit("maxItems", "rerank_max_documents")),
    ]
    truncate: Annotated[Flag, Field(description="Accepted; passages are always truncated to the model's window.")]
    return_text: Flag
    raw_scores: Annotated[Flag, Field(description="The model's logits instead of scores in [0, 1].")]


class CohereResultDocument(BaseModel):
    text: str
    id: str | None = None


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: CohereResultDocument | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int


class CohereMeta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits


class JinaUsage(BaseModel):
    total_tokens: int


class CohereRerankResponse(BaseModel):
    """Results by descending score; ``model`` and ``usage`` only on Jina's ``/v1/rerank``."""

    id: str
    results: list[CohereResult]
    meta: CohereMeta
    model: str | None = None
    usage: JinaUsage | None = None


class TeiResult(BaseModel):
    index: int
    score: float
    text: str | None = None


class TeiRerankResponse(RootModel[list[TeiResult]]):
    """A bare JSON list, as TEI answers."""


def validate(model: type[M], body: Mapping[str, Any], settings: Any) -> M:
    """The first problem, as the API's error (a 422, or 413 for too many documents)."""
    try:
        return model.model_validate(body, context={"settings": settings})
    except ValidationError as exc:
        first = problems(exc)[0]
        raise ApiError(_STATUS.get(first.code, 422), first.code, first.message) from None


def ranked_order(scores: Sequence[float], top_n: int | None) -> list[int]:
    """Indices by descending score, ties in input order; cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return order[:top_n] if top_n is not None else order


def search_units(document_count: int) -> int:
    return max(1, math.ceil(document_count / DOCUMENTS_PER_SEARCH_UNIT))


def cohere_response(
    req: CohereRerankRequest, scores: Sequence[float], *, jina: bool, model: str | None
) -> dict[str, Any]:
    texts, ids = req.texts(), req.ids()
    return_documents = jina if req.return_documents is None else req.return_documents
    results = []
    for i in ranked_order(scores, req.top_n):
        result = CohereResult(index=i, relevance_score=float(scores[i]))
        if return_documents:
            result.document = CohereResultDocument(text=texts[i], **({"id": ids[i]} if ids[i] is not None else {}))
        results.append(result)
    body = CohereRerankResponse(
        id=str(uuid.uuid4()),
        results=results,
        meta=CohereMeta(
            api_version=ApiVersion(version="2"), billed_units=BilledUnits(search_units=search_units(len(texts)))
        ),
    )
    if jina:  # Jina clients read model and usage; Cohere clients ignore them
        body.model = model
        body.usage = JinaUsage(total_tokens=sum(len(t) for t in texts) // 4 + len(req.query) // 4)
    return body.model_dump(mode="json", exclude_unset=True)


def tei_response(req: TeiRerankRequest, scores: Sequence[float]) -> list[dict[str, Any]]:
    out = []
    for i in ranked_order(scores, None):
        item = TeiResult(index=i, score=float(scores[i]))
        if req.return_text:
            item.text = req.texts[i]
        out.append(item.model_dump(mode="json", exclude_unset=True))
    return out
