"""``GET /metrics`` (Prometheus text format) and the HTTP response counter.

Open outside production (expose it on the internal network only); with ``SHOPRANK_METRICS_TOKEN`` set it
needs that bearer token, and in production (``SHOPRANK_ENV=production``) it stays closed (403) until the token
is set. Under gunicorn with several workers set
``PROMETHEUS_MULTIPROC_DIR`` (see ``webapp.gunicorn_conf``) so a scrape sees every worker's samples.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from shoprank.observability import metrics
from webapp.context import app_services
from webapp.errors import ApiError
from workers.ops_metrics import ops_collector_for

bp = Blueprint("metrics", __name__)
_COLLECTOR = "shoprank_ops_collector"


def _ops_collector() -> Any:
    """One scrape-time collector per app (queue depth, live workers); None without Redis."""
    extensions = current_app.extensions
    if _COLLECTOR not in extensions:
        extensions[_COLLECTOR] = ops_collector_for(app_services().settings)
    return extensions[_COLLECTOR]


def has_metrics_token() -> bool:
    """The request carries ``Authorization: Bearer <SHOPRANK_METRICS_TOKEN>`` (never true while it is unset)."""
    token = app_services().settings.metrics_token
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


@bp.get("/metrics")
def scrape() -> Response:
    settings = app_services().settings
    if not settings.metrics_token and settings.env == "production":
        raise ApiError(
            403,
            "metrics_token_required",
            "GET /metrics is closed in production until SHOPRANK_METRICS_TOKEN is set (Prometheus sends it as a "
            "bearer token)",
        )
    if settings.metrics_token and not has_metrics_token():
        raise ApiError(401, "unauthorized", "GET /metrics needs the bearer token in SHOPRANK_METRICS_TOKEN")
    return Response(metrics.render(_ops_collector()), mimetype=metrics.CONTENT_TYPE.split(";")[0],
                    headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})  # fmt: skip


def install_http_metrics(app: Flask) -> None:
    """Count every response by method, endpoint (the route's name, so paths cannot explode the label set)."""

    @app.after_request
    def count_response(response: Response) -> Response:
        endpoint = request.endpoint or ("static" if request.path.startswith("/static") else "unmatched")
        metrics.HTTP_RESPONSES.labels(request.method, endpoint, str(response.status_code)).inc()
        return response
