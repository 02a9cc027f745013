"""``POST /api/rank``: rerank a shop's own first stage (Elasticsearch, OpenSearch, Solr, Vespa) like a search.

The answer is ``GET /api/search``'s, from the same code after the first stage (``SearchService.rank_candidates``):
the unit's variant, interleaving, the fallback to the client's order and an ``impression_id`` for
``POST /api/events``, so experiments and the dashboard count these searches as their own. Public and limited per
client IP like ``/api/search`` (``webapp.security``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from experiments.store.impression_ids import SEARCH
from search.service import SearchInputError
from search.supplied import InlineProduct, resolve_candidates
from webapp.blueprints.api import parse_language, parse_market, result_json
from webapp.context import app_services
from webapp.errors import ApiError
from webapp.http import current_request_id, json_object, visitor_id
from webapp.impressions import signed_result
from webapp.rank_schema import parse_rank_request

bp = Blueprint("rank", __name__, url_prefix="/api")

#: Result fields an inline product may leave out: shown as null rather than as the catalog's 0 / "".
_UNSENT_IF_NO_PRICE = ("price", "currency", "price_display")
_UNSENT_IF_EMPTY = ("category", "language")


@bp.post("/rank")
def rank() -> Any:
    app = app_services()
    settings = app.settings
    # a tighter cap than the app's, checked before the body is read or parsed (an 8 MB body took seconds)
    request.max_content_length = min(settings.rank_max_request_bytes, settings.max_request_bytes)
    req = parse_rank_request(
        json_object(), max_candidates=settings.rank_max_candidates, max_top_n=settings.search_max_limit
    )
    language = parse_language(req.language, status=422)
    market = parse_market(req.market, status=422)
    resolved = resolve_candidates(req.candidates, app.index.get)
    try:
        result = app.search.rank_candidates(
            req.query,
            resolved.items,
            limit=req.top_n or settings.search_max_limit,
            language=language,
            unit_id=req.user or visitor_id(),
            request_id=current_request_id(),
            market=market,
        )
    except SearchInputError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    body = result_json(signed_result(result, kind=SEARCH, query=result.query, items=len(result.hits)), language)
    index_of = resolved.index_of()
    inline = {c.sku: c for c in req.candidates if isinstance(c, InlineProduct)}
    for entry in body["results"]:
        entry["index"] = index_of[entry["sku"]]
        product = inline.get(entry["sku"])
        if product is not None:
            _show_unsent_as_null(entry, product)
    body["ignored"] = resolved.ignored
    return body


def _show_unsent_as_null(entry: dict[str, Any], product: InlineProduct) -> None:
    if product.price is None:
        entry.update(dict.fromkeys(_UNSENT_IF_NO_PRICE))
    for name in _UNSENT_IF_EMPTY:
        if not entry[name]:
            entry[name] = None
