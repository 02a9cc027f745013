"""The OpenAPI 3.1 document served at ``/openapi.json``.

Written by hand next to the code it describes; ``tests/test_openapi.py`` checks that
its paths and methods are exactly the app's JSON routes, so the two cannot drift. The limits a deployment
configures (query length, documents, candidates, page size, events per batch) come from the running app's
``Settings``, so each deployment documents its own; the fixed ones come from the modules that enforce them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from catalog.validation import MAX_ATTRIBUTES
from shoprank.config import Settings
from shoprank.contracts import resolve_limits
from webapp.blueprints.api import DEFAULT_LIMIT
from webapp.rank_schema import MAX_CHARS, MAX_USER_CHARS
from webapp.rerank_models import CohereRerankRequest, CohereRerankResponse, TeiRerankRequest, TeiRerankResponse
from webapp.suggest_models import SuggestQuery, SuggestResponse

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error_responses(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (invalid JSON, not UTF-8, bad parameter)",
        401: "Missing, unknown or revoked API key",
        413: "Too many documents or body too large",
        422: "Well-formed JSON with invalid fields",
        429: "Per-key rate limit exceeded (see Retry-After)",
        503: "The reranker could not answer in time (see Retry-After)",
    }
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}} for s in statuses}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A query as this deployment accepts it (``SHOPRANK_MAX_QUERY_CHARS``)."""
    return {"type": "string", "minLength": 1, "maxLength": settings.max_query_chars, **extra}


#: Contracts that are pydantic models: their JSON Schemas are generated (``model_schemas``), not written here.
_MODELS: tuple[type[BaseModel], ...] = (
    CohereRerankRequest,
    CohereRerankResponse,
    TeiRerankRequest,
    TeiRerankResponse,
    SuggestResponse,
)


def model_schemas(settings: Settings) -> dict[str, Any]:
    """``components.schemas`` for every model of ``_MODELS`` and the models they use, with this deployment's limits.

    Requests are described as validated, responses as serialised; nested models become components of their own.
    """
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        response = model.__name__.endswith("Response")
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization" if response else "validation"
        )
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    resolved: dict[str, Any] = resolve_limits(schemas, settings)
    return resolved


def query_parameters(model: type[BaseModel], settings: Settings) -> list[dict[str, Any]]:
    """A GET endpoint's query parameters, one per field of its model (``schema``, ``description``, required)."""
    schema = resolve_limits(model.model_json_schema(), settings)
    out = []
    for name, prop in schema["properties"].items():
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter = {"name": name, "in": "query", "schema": prop, "required": name in schema.get("required", ())}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_FACET_VALUES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"value": {"type": "string"}, "label": {"type": "string"}, "count": {"type": "integer"}},
    },
}
_SEARCH_FACETS: dict[str, Any] = {
    "type": "object",
    "description": "Counts over every matching product (all pages); prices in the shopper's currency",
    "properties": {
        "category": _FACET_VALUES,
        "brand": _FACET_VALUES,
        "language_of_listing": _FACET_VALUES,
        "in_stock": {"type": "object", "properties": {"count": {"type": "integer"}}},
        "price": {
            "type": "object",
            "properties": {
                "currency": {"type": "string"},
                "min": {"type": ["number", "null"]},
                "max": {"type": ["number", "null"]},
                "buckets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "min": {"type": ["number", "null"]},
                            "max": {"type": ["number", "null"]},
                            "count": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
}
_MONEY: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}},
}
_APPLIED_FILTERS: dict[str, Any] = {
    "type": "object",
    "description": "What narrowed the results, including a price limit recognised in the query text",
    "properties": {
        "query_text": {"type": "string", "description": "The words retrieval and the reranker saw"},
        "category": {"type": "array", "items": {"type": "string"}},
        "brand": {"type": "array", "items": {"type": "string"}},
        "language_of_listing": {"type": "array", "items": {"type": "string"}},
        "in_stock": {"type": "boolean"},
        "min_price": _MONEY,
        "max_price": _MONEY,
        "price_from_query": {
            "type": ["object", "null"],
            "properties": {
                "text": {"type": "string"},
                "language": {"type": "string"},
                "min_price": _MONEY,
                "max_price": _MONEY,
            },
        },
        "sort": {"type": "string"},
        "currency": {"type": "string"},
    },
}

_PRODUCT_RESULT = {
    "type": "object",
    "properties": {
        "rank": {"type": "integer"},
        "sku": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "brand": {"type": ["string", "null"]},
        "category": {"type": "string"},
        "language": {"type": "string", "description": "Language the product is written in"},
        "price": {"type": "number"},
        "currency": {"type": "string"},
        "price_display": {"type": "string"},
        "price_converted": {
            "type": ["object", "null"],
            "description": "Approximate price in the shopper's currency (one static FX table, SHOPRANK_FX_RATES); "
            "null when the listing is in it",
            "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}, "display": {"type": "string"}},
        },
        "image": {"type": ["string", "null"]},
        "stock": {"type": ["integer", "null"], "description": "null: the feed gave no stock (availability unknown)"},
        "availability": {
            "enum": ["in stock", "out of stock", "preorder", "backorder", None],
            "description": "null when unknown: buyable, shown without a stock badge, kept by in_stock=true",
        },
        "attributes": {"type": "object"},
        "score": {"type": "number", "description": "Rerank score (0..1) when reranked, else the first-stage score"},
        "first_stage_rank": {"type": "integer"},
        "first_stage_score": {"type": "number"},
        "rerank_score": {"type": ["number", "null"]},
        "retriever_ranks": {"type": "object", "additionalProperties": {"type": "integer"}},
        "team": {
            "enum": ["A", "B", None],
            "description": "Interleaving: the ranker that placed this result; send it back in the impression's items",
        },
    },
}

_SEARCH_RESPONSE = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "language": {"type": ["string", "null"]},
        "request_id": {"type": "string"},
        "impression_id": {
            "type": "string",
            "description": "The id to send as the impression event's id, with this answer's `query` and every "
            "product of `results`: the server signed it for them, and search analytics counts the impression "
            "only then",
        },
        "experiment": {"type": ["string", "null"]},
        "variant": {
            "type": ["string", "null"],
            "description": "'interleaved' in an interleaving experiment",
        },
        "interleaved": {
            "type": "boolean",
            "description": "Team-draft merge of two rankers; each result has a team",
        },
        "reranked": {"type": "boolean"},
        "rerank_status": {
            "enum": [
                "ok",
                "partial",
                "shed",
                "timeout",
                "unavailable",
                "rejected",
                "error",
                "disabled",
                "no_candidates",
            ],
            "description": "partial: the deadline stopped the reranker after rerank_depth candidates; shed: skipped "
            "at once, the pool could not score even the minimum depth in time",
        },
        "rerank_depth": {
            "type": "integer",
            "description": "First-stage candidates the reranker scored (the head); the rest follow in first-stage "
            "order",
        },
        "scorer": {"type": ["object", "null"]},
        "candidates": {"type": "integer"},
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "results": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ProductResult"},
        },
    },
}

_RANK_CANDIDATE = {
    "oneOf": [
        {
            "type": "string",
            "maxLength": MAX_CHARS["sku"],
            "description": "A sku of our catalog: ranked as that product",
        },
        {
            "type": "object",
            "description": "An inline product, ranked from these fields (passage as for catalog products)",
            "required": ["title"],
            "additionalProperties": False,
            "properties": {
                "sku": {"type": "string", "maxLength": MAX_CHARS["sku"], "description": "Default: candidate-<index>"},
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS["title"]},
                "description": {"type": "string", "maxLength": MAX_CHARS["description"]},
                "price": {"type": ["number", "string"], "minimum": 0, "description": "Needs currency"},
                "currency": {"type": "string", "description": "ISO 4217"},
                "language": {"type": "string", "description": "ISO 639-1: the product's language"},
                "brand": {"type": "string", "maxLength": MAX_CHARS["brand"]},
                "category": {"type": "string", "maxLength": MAX_CHARS["category"]},
                "image": {"type": "string", "maxLength": MAX_CHARS["image"]},
                "stock": {"type": "integer", "minimum": 0, "description": "Left out: availability unknown (buyable)"},
                "attributes": {
                    "type": "object",
                    "maxProperties": MAX_ATTRIBUTES,
                    "additionalProperties": {"type": ["string", "number"]},
                },
            },
        },
    ]
}


def _rank_request(settings: Settings) -> dict[str, Any]:
    most = settings.search_max_limit
    return {
        "type": "object",
        "required": ["query", "candidates"],
        "properties": {
            "query": _query(settings, description="What the shopper typed"),
            "lang": {"type": "string", "description": "ISO 639-1: the shopper's language (targeting, price display)"},
            "user": {
                "type": "string",
                "maxLength": MAX_USER_CHARS,
                "description": "Unit id; default: the visitor cookie",
            },
            "market": {"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "ISO 3166 alpha-2"},
            "candidates": {
                "type": "array",
                "maxItems": settings.rank_max_candidates,
                "description": "Your first stage's hits, best first; unique skus; 413 past "
                "SHOPRANK_RANK_MAX_CANDIDATES",
                "items": _RANK_CANDIDATE,
            },
            "top_n": {"type": "integer", "minimum": 1, "maximum": most, "description": f"Default: all, up to {most}"},
        },
    }


_RANK_RESPONSE = {
    "allOf": [
        {"$ref": "#/components/schemas/SearchResponse"},
        {
            "type": "object",
            "properties": {
                "results": {
                    "type": "array",
                    "description": "ProductResult plus index; first_stage_rank is the position among ranked candidates",
                    "items": {
                        "allOf": [
                            {"$ref": "#/components/schemas/ProductResult"},
                            {"properties": {"index": {"type": "integer", "description": "Position in the request"}}},
                        ]
                    },
                },
                "ignored": {
                    "type": "array",
                    "description": "Candidates left out: skus our catalog does not have",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "sku": {"type": "string"},
                            "reason": {"enum": ["unknown_sku"]},
                        },
                    },
                },
            },
        },
    ]
}

_EVENT = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": {"type": "string", "description": "Client-generated UUID; re-sent ids are stored once"},
        "type": {"enum": ["impression", "click", "add_to_cart", "purchase"]},
        "unit": {"type": "string", "description": "Visitor/user id; defaults to the visitor cookie"},
        "ts": {"type": ["integer", "string"], "description": "Epoch milliseconds or ISO 8601 with time zone"},
        "experiment": {"type": "string"},
        "variant": {"type": "string"},
        "impression_id": {"type": "string", "description": "For click/add_to_cart/purchase"},
        "request_id": {"type": "string"},
        "query": {"type": "string", "description": "impression of a search (required unless listing is given)"},
        "listing": {
            "enum": ["search", "category", "brand", "deals", "home", "filters"],
            "description": "impression: what the page listed; anything but search is a listing view without a "
            "query (counted apart from searches in search analytics)",
        },
        "language": {"type": "string", "description": "impression"},
        "reranked": {"type": "boolean", "description": "impression"},
        "rerank_status": {"type": "string", "description": "impression: the search answer's rerank_status"},
        "rerank_depth": {"type": "integer", "minimum": 0, "description": "impression: the search answer's"},
        "scorer": {
            "type": ["object", "null"],
            "description": "impression: the search answer's scorer (kind, model_id)",
        },
        "search_ms": {"type": "number", "description": "impression: the search answer's timings_ms.total"},
        "items": {
            "type": "array",
            "description": "impression: skus in rank order, or {sku, position, team}",
            "items": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        },
        "sku": {"type": "string"},
        "position": {"type": "integer", "minimum": 1},
        "quantity": {"type": "integer", "minimum": 1},
        "value": {"type": "number", "description": "purchase: order value"},
        "currency": {"type": "string", "description": "purchase: ISO 4217"},
    },
}


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The document for an app running with ``settings`` (its limits are the ones this deployment enforces)."""
    per_page = {"type": "integer", "minimum": 1, "maximum": settings.search_max_limit}
    per_page["default"] = min(DEFAULT_LIMIT, settings.search_max_limit)
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    rerank_errors = _error_responses(400, 401, 413, 422, 429, 503)
    generated = model_schemas(settings)

    def cohere_shaped(summary: str) -> dict[str, Any]:
        """Cohere v2 and Jina clients send and read the same shapes; only the defaults differ."""
        return {
            "summary": summary,
            "security": bearer,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CohereRerankRequest"}}},
            },
            "responses": {
                "200": _json({"$ref": "#/components/schemas/CohereRerankResponse"}),
                **rerank_errors,
            },
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shoprank",
            "version": "1",
            "description": "Multilingual product search with reranking; Cohere/Jina/TEI-compatible rerank APIs.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {},
                            },
                        }
                    },
                },
                **generated,
                "ProductResult": _PRODUCT_RESULT,
                "SearchResponse": _SEARCH_RESPONSE,
                "RankRequest": _rank_request(settings),
                "SearchFacets": _SEARCH_FACETS,
                "AppliedFilters": _APPLIED_FILTERS,
                "Event": _EVENT,
            },
        },
        "paths": {
            "/api/search": {
                "get": {
                    "summary": "Search the catalog (first stage + rerank with deadline fallback)",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": settings.max_query_chars},
                            "description": "Words; a price limit in them ('under $100', '500元以下') becomes a "
                            "price filter. May be empty when a filter is given (browse).",
                        },
                        {"name": "lang", "in": "query", "schema": {"type": "string"}, "description": "ISO 639-1"},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": per_page,
                            "description": "Older name of per_page",
                        },
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                        {"name": "per_page", "in": "query", "schema": per_page},
                        {"name": "sort", "in": "query", "schema": {"enum": ["relevance", "price_asc", "price_desc"]}},
                        {"name": "min_price", "in": "query", "schema": {"type": "number", "minimum": 0}},
                        {"name": "max_price", "in": "query", "schema": {"type": "number", "minimum": 0}},
                        {
                            "name": "currency",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
                            "description": "ISO 4217: of min_price/max_price and of price_converted; default from "
                            "lang/market",
                        },
                        {
                            "name": "category",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "style": "form",
                            "explode": True,
                        },
                        {
                            "name": "brand",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "style": "form",
                            "explode": True,
                        },
                        {
                            "name": "language_of_listing",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "description": "ISO 639-1 of the product listing",
                        },
                        {"name": "in_stock", "in": "query", "schema": {"type": "boolean", "default": False}},
                        {"name": "user", "in": "query", "schema": {"type": "string"}, "description": "Unit id"},
                        {
                            "name": "market",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                            "description": "ISO 3166 alpha-2, for experiment targeting",
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "allOf": [
                                    {"$ref": "#/components/schemas/SearchResponse"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "total": {
                                                "type": "integer",
                                                "description": "Products the query matches (the same in every arm)",
                                            },
                                            "match": {
                                                "enum": ["matched", "related", "none"],
                                                "description": "none: nonsense; related: nothing matches well, "
                                                "the closest products are under `related` and `total` is 0",
                                            },
                                            "related": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/ProductResult"},
                                                "description": "Closest products when nothing matches well; "
                                                "never counted as results",
                                            },
                                            "page": {"type": "integer"},
                                            "per_page": {"type": "integer"},
                                            "sort": {"enum": ["relevance", "price_asc", "price_desc"]},
                                            "currency": {"type": "string"},
                                            "facets": {"$ref": "#/components/schemas/SearchFacets"},
                                            "applied_filters": {"$ref": "#/components/schemas/AppliedFilters"},
                                            "did_you_mean": {
                                                "type": ["string", "null"],
                                                "description": "The query with misspelt words corrected against "
                                                "the catalog's vocabulary, when the search used the corrections",
                                            },
                                        },
                                    },
                                ]
                            }
                        ),
                        **_error_responses(400),
                    },
                }
            },
            "/api/suggest": {
                "get": {
                    "summary": "Autocomplete: past searches, categories, brands and product titles, shopper's "
                    "language first",
                    "parameters": query_parameters(SuggestQuery, settings),
                    "responses": {
                        "200": _json(_ref(SuggestResponse)),
                        **_error_responses(400),
                    },
                }
            },
            "/api/rank": {
                "post": {
                    "summary": "Rerank your own first stage's hits (Elasticsearch, OpenSearch, Solr…) as a search",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RankRequest"}}},
                    },
                    "responses": {"200": _json(_RANK_RESPONSE), **_error_responses(400, 413, 422, 429)},
                }
            },
            "/api/events": {
                "post": {
                    "summary": "Store a batch of impression/click/add_to_cart/purchase events (idempotent by id)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["events"],
                                    "properties": {
                                        "events": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": settings.events_max_batch,
                                            "description": "413 past SHOPRANK_EVENTS_MAX_BATCH",
                                            "items": {"$ref": "#/components/schemas/Event"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "received": {"type": "integer"},
                                    "stored": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                    "waiting_for_impression": {
                                        "type": "integer",
                                        "description": "Stored clicks, carts and purchases whose impression has not "
                                        "arrived yet: they count in its experiment if it arrives within 30 minutes",
                                    },
                                    "attached": {
                                        "type": "integer",
                                        "description": "Earlier events that this batch's impressions picked up",
                                    },
                                    "ignored": {
                                        "type": "array",
                                        "description": "Events not stored because they could not count",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "index": {"type": "integer"},
                                                "id": {"type": "string"},
                                                "field": {"type": "string"},
                                                "reason": {
                                                    "type": "string",
                                                    "enum": [
                                                        "unknown_experiment",
                                                        "not_exposed",
                                                        "variant_not_assigned",
                                                        "id_conflict",
                                                    ],
                                                },
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            }
                        ),
                        **_error_responses(400, 413, 422),
                    },
                }
            },
            "/v2/rerank": {"post": cohere_shaped("Rerank documents (Cohere v2 shape)")},
            "/v1/rerank": {"post": cohere_shaped("Rerank documents (Jina shape; return_documents defaults to true)")},
            "/rerank": {
                "post": {
                    "summary": "Rerank texts (Hugging Face TEI shape)",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": generated["TeiRerankRequest"],
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_ref(TeiRerankResponse), "Sorted by score, best first"),
                        **rerank_errors,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness, with the active scorer (kind=bi-encoder-fallback when weights are missing)",
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: database, Redis (if configured), catalog, reranker/workers, active scorer",
                    "responses": {
                        "200": _json({"type": "object"}),
                        "503": _json({"type": "object"}, "A required dependency is down"),
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}},
            },
        },
    }
