"""JSON API: ``GET /api/search`` and ``POST /api/events``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request, url_for

from experiments.outbox import ExposureOutbox
from experiments.store import EventBatchTooLarge, EventValidationError, IngestResult, ingest_events, parse_events
from experiments.store.screening import IgnoredEvent, screen_events
from search.filters import FxRates
from search.service import SearchInputError, SearchResult
from search.shop_search import ShopPage
from search.shopper_currency import shopper_currency
from search.suggest import Suggestion
from shoprank.db import is_database_unavailable, run_retrying_conflicts
from shoprank.languages import is_known_language, language_name
from shoprank.observability import metrics
from webapp.context import app_services
from webapp.errors import ApiError
from webapp.http import current_request_id, json_body, reject_unstorable, visitor_id
from webapp.i18n import UI_LANGUAGES, catalog_category_names, category_label
from webapp.impressions import impression_key, signed_page
from webapp.presenters import applied_filters_json, converted_price, facets_json, hit_json
from webapp.search_params import parse_search_params
from webapp.suggest_models import SuggestionOut, SuggestQuery, SuggestResponse

bp = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20


def parse_language(raw: str | None, status: int = 400) -> str | None:
    """``status``: 400 for a query parameter, 422 for a field of a JSON body (``POST /api/rank``)."""
    if raw is None or raw == "":
        return None
    if not is_known_language(raw):
        raise ApiError(
            status, "unknown_language", f"lang={raw[:20]!r} is not an ISO 639-1 language code (e.g. en, zh, ar)"
        )
    return raw


def parse_market(raw: str | None, status: int = 400) -> str | None:
    """ISO 3166 alpha-2 market for experiment targeting (``DE``, ``jp``); empty means none."""
    if raw is None or raw == "":
        return None
    if len(raw) != 2 or not raw.isascii() or not raw.isalpha():
        raise ApiError(status, "invalid_market", f"market={raw[:20]!r} is not a two-letter country code (e.g. DE, JP)")
    return raw.upper()


def result_json(result: SearchResult, locale: str | None) -> dict[str, Any]:
    """What every ranked answer carries (``/api/search`` and ``POST /api/rank``)."""
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


def search_json(page: ShopPage, locale: str | None, fx: FxRates) -> dict[str, Any]:
    """``result_json`` for the page's hits plus the page, facets and applied filters (DESIGN.md §7)."""
    ui = locale if locale in UI_LANGUAGES else "en"
    names = catalog_category_names()
    return {
        **result_json(page.result, locale),
        "results": [hit_json(hit, locale, converted_price(hit.item, page.currency, fx, locale)) for hit in page.hits],
        "total": page.total,
        "match": page.match,
        "related": [
            hit_json(hit, locale, converted_price(hit.item, page.currency, fx, locale)) for hit in page.related
        ],
        "page": page.page,
        "per_page": page.per_page,
        "sort": page.sort,
        "currency": page.currency,
        "facets": facets_json(page.facets, lambda s: category_label(s, ui, names), lambda c: language_name(c, ui)),
        "applied_filters": applied_filters_json(page),
        # the query with misspelt words corrected, when the lexical search used the corrections (else null)
        "did_you_mean": page.did_you_mean,
    }


@bp.get("/search")
def search() -> Any:
    app = app_services()
    settings = app.settings
    language = parse_language(request.args.get("lang"))
    user = request.args.get("user") or visitor_id()
    if user is not None and len(user) > 128:
        raise ApiError(400, "invalid_user", "user must be at most 128 characters")
    reject_unstorable([("user", user or "")], "query parameter")  # the exposure log stores it
    market = parse_market(request.args.get("market"))
    fx = app.search.fx
    params = parse_search_params(
        request.args,
        fx=fx,
        default_currency=shopper_currency(language, market, fx),
        default_per_page=min(DEFAULT_LIMIT, settings.search_max_limit),
        max_per_page=settings.search_max_limit,
    )
    query = request.args.get("q", "")
    try:
        page = app.shop_search.search(
            params.query(
                query, language=language, unit_id=user, request_id=current_request_id(), surface="api", market=market
            ),
            depth=settings.search_max_limit,
        )
    except SearchInputError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    # signed for what the client is told to echo: ``query`` and the ``results`` it lists (search analytics)
    return search_json(signed_page(page, query=page.result.query, items=len(page.hits)), language, fx)


@bp.get("/suggest")
def suggest() -> Any:
    """Autocomplete: ``q`` (what was typed so far), ``lang``; past searches, categories, brands, product titles."""
    app = app_services()
    params = SuggestQuery.from_args(request.args)
    ui = params.lang if params.lang in UI_LANGUAGES else "en"
    suggestions = app.suggester.suggest(
        params.q,
        params.lang,
        limit=params.limit,
        category_label=lambda slug: category_label(slug, ui, catalog_category_names()),
    )
    return SuggestResponse(
        query=params.q,
        suggestions=[
            SuggestionOut.model_validate(
                {"kind": s.kind, "text": s.text, "value": s.value, "language": s.language, "url": suggestion_url(s)}
            )
            for s in suggestions
        ],
    ).model_dump(mode="json")


def suggestion_url(suggestion: Suggestion) -> str:
    """Where choosing a suggestion leads: a search, a category or brand listing, or the product page."""
    if suggestion.kind == "product":
        return url_for("shop.product", sku=suggestion.value)
    if suggestion.kind == "category":
        return url_for("shop.search", category=suggestion.value)
    if suggestion.kind == "brand":
        return url_for("shop.search", brand=suggestion.value)
    return url_for("shop.search", q=suggestion.value)


@bp.post("/events")
def events() -> Any:
    """A batch of impression/click/add_to_cart/purchase events; ids are client-generated, retries are harmless.

    Events that cannot count (unknown experiment, a variant the unit was not served, an id taken by another
    event) are not stored and come back under ``ignored``, each with its reason and field.
    """
    app = app_services()
    payload = json_body()
    try:
        parsed = parse_events(
            payload,
            default_unit=visitor_id(),
            max_batch=app.settings.events_max_batch,
            impression_key=impression_key(),  # marks the impressions whose id this server issued (analytics)
        )
    except EventValidationError as exc:
        status, reason = (413, "too_large") if isinstance(exc, EventBatchTooLarge) else (422, "invalid")
        metrics.EVENTS_REJECTED.labels(reason).inc()
        raise ApiError(status, "invalid_events", str(exc), details=exc.errors[:100]) from None

    outbox = getattr(app.search.resolver, "outbox", None)
    if isinstance(outbox, ExposureOutbox):
        # exposures kept during a database outage first, so these events find their unit's exposure
        try:
            outbox.replay(app.db)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise  # 503 + Retry-After, as for the events themselves
            log.exception("exposure outbox replay failed; storing the events without it")

    def store(session: Any) -> tuple[IngestResult, list[IgnoredEvent]]:
        counted, ignored = screen_events(session, parsed)  # events that could never count are not stored
        return ingest_events(session, counted), ignored

    outcome, ignored = run_retrying_conflicts(app.db, store)
    metrics.EVENTS_INGESTED.labels("stored").inc(outcome.stored)
    metrics.EVENTS_INGESTED.labels("duplicate").inc(outcome.duplicates)
    metrics.EVENTS_INGESTED.labels("ignored").inc(len(ignored))
    return {
        "received": len(parsed),
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "waiting_for_impression": outcome.waiting,
        "attached": outcome.attached,
        "ignored": [item.as_json() for item in ignored],
    }
