"""Drop-in rerank endpoints: ``POST /v2/rerank`` (Cohere v2), ``POST /v1/rerank`` (Jina), ``POST /rerank`` (TEI).

Same scorer and dispatcher as the shop's search: in-process or Celery workers.
Unlike a search, a rerank API call has nothing to fall back to, so a reranker
that cannot answer in time is a 503 the client may retry.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from reranking.dispatch import DispatchResult, RerankJob, RerankRejected
from webapp.auth import require_api_key
from webapp.context import app_services
from webapp.errors import ApiError
from webapp.http import current_request_id, json_object
from webapp.rerank_models import CohereRerankRequest, TeiRerankRequest, cohere_response, tei_response, validate

bp = Blueprint("rerank_api", __name__)


def _score(query: str, texts: list[str]) -> DispatchResult:
    app = app_services()
    job = RerankJob(query=query, passages=texts, request_id=current_request_id())
    try:
        return app.dispatcher.dispatch(job, app.settings.rerank_api_deadline_ms / 1000)
    except RerankRejected as exc:
        raise ApiError(422, "rejected", str(exc)) from None
    except Exception as exc:  # timeout, no worker, model error: retryable from the client's side
        raise ApiError(
            503, "reranker_unavailable", f"the reranker could not answer: {exc}", headers={"Retry-After": "1"}
        ) from None


def _with_scorer_header(response: Response, result: DispatchResult) -> Response:
    model = result.scorer.get("model_id")
    if model:
        response.headers["X-Shoprank-Model"] = f"{model}; kind={result.scorer.get('kind')}"
    return response


def _cohere(jina: bool) -> Response:
    req = validate(CohereRerankRequest, json_object(), app_services().settings)
    result = _score(req.query, req.texts())
    body = cohere_response(req, result.normalized_scores, jina=jina, model=req.model or result.scorer.get("model_id"))
    return _with_scorer_header(jsonify(body), result)


@bp.post("/v2/rerank")
@require_api_key
def cohere_v2() -> Any:
    return _cohere(jina=False)


@bp.post("/v1/rerank")
@require_api_key
def jina_v1() -> Any:
    return _cohere(jina=True)


@bp.post("/rerank")
@require_api_key
def tei() -> Any:
    req = validate(TeiRerankRequest, json_object(), app_services().settings)
    result = _score(req.query, req.texts)
    scores = result.raw_scores if req.raw_scores else result.normalized_scores
    return _with_scorer_header(jsonify(tei_response(req, scores)), result)
