"""JSON API: ``GET /api/search`` and ``POST /api/events``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from experiments.store import EventValidationError, ingest_events, parse_events
from shoprank.languages import is_known_language
from shoprank.observability import metrics
from shoprank.search.service import SearchInputError, SearchResult
from webapp import services
from webapp.errors import ApiError
from webapp.http import current_request_id, json_body, visitor_id
from webapp.presenters import hit_json

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_LIMIT = 20


def parse_limit(raw: str | None, maximum: int) -> int:
    if raw is None or raw == "":
        return min(DEFAULT_LIMIT, maximum)
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_limit", f"limit must be a whole number, got {raw[:20]!r}") from None
    if limit < 1 or limit > maximum:
        raise ApiError(400, "invalid_limit", f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def parse_language(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if not is_known_language(raw):
        raise ApiError(
            400, "unknown_language", f"lang={raw[:20]!r} is not an ISO 639-1 language code (e.g. en, zh, ar)"
        )
    return raw


def parse_market(raw: str | None) -> str | None:
    """ISO 3166 alpha-2 market for experiment targeting (``DE``, ``jp``); empty means none."""
    if raw is None or raw == "":
        return None
    if len(raw) != 2 or not raw.isascii() or not raw.isalpha():
        raise ApiError(400, "invalid_market", f"market={raw[:20]!r} is not a two-letter country code (e.g. DE, JP)")
    return raw.upper()


def search_json(result: SearchResult, locale: str | None) -> dict[str, Any]:
    return {
        "query": result.query,
        "language": result.language,
        "request_id": result.request_id,
        "impression_id": result.impression_id,
        "experiment": result.experiment,
        "variant": result.variant,
        "interleaved": result.interleaved,
        "reranked": result.reranked,
        "rerank_status": result.rerank_status,
        "rerank_depth": result.rerank_depth,
        "scorer": result.scorer,
        "candidates": result.candidates,
        "timings_ms": result.timings_ms,
        "results": [hit_json(hit, locale) for hit in result.hits],
    }


@bp.get("/search")
def search() -> Any:
    app = services()
    settings = app.settings
    limit = parse_limit(request.args.get("limit"), settings.search_max_limit)
    language = parse_language(request.args.get("lang"))
    user = request.args.get("user") or visitor_id()
    if user is not None and len(user) > 128:
        raise ApiError(400, "invalid_user", "user must be at most 128 characters")
    market = parse_market(request.args.get("market"))
    try:
        result = app.search.search(
            request.args.get("q", ""),
            limit=limit,
            language=language,
            unit_id=user,
            request_id=current_request_id(),
            surface="api",
            market=market,
        )
    except SearchInputError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return search_json(result, language)


@bp.post("/events")
def events() -> Any:
    """A batch of impression/click/add_to_cart/purchase events; ids are client-generated, retries are harmless."""
    app = services()
    payload = json_body()
    try:
        parsed = parse_events(payload, default_unit=visitor_id(), max_batch=app.settings.events_max_batch)
    except EventValidationError as exc:
        status = 413 if exc.errors and "the limit is" in exc.errors[0] else 422
        metrics.EVENTS_REJECTED.labels("too_large" if status == 413 else "invalid").inc()
        raise ApiError(status, "invalid_events", str(exc), details=exc.errors[:100]) from None
    with app.db.session() as session:
        outcome = ingest_events(session, parsed)
    metrics.EVENTS_INGESTED.labels("stored").inc(outcome.stored)
    metrics.EVENTS_INGESTED.labels("duplicate").inc(outcome.duplicates)
    return {"received": outcome.received, "stored": outcome.stored, "duplicates": outcome.duplicates}
