"""``GET /metrics`` (Prometheus text format) and the HTTP response counter.

Open by default, like ``/health``: expose it on the internal network only, or set ``SHOPRANK_METRICS_TOKEN``
and configure Prometheus with that bearer token. Under gunicorn with several workers set
``PROMETHEUS_MULTIPROC_DIR`` (see ``webapp.gunicorn_conf``) so a scrape sees every worker's samples.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from shoprank.observability import metrics
from webapp import services
from webapp.errors import ApiError

bp = Blueprint("metrics", __name__)
_COLLECTOR = "shoprank_ops_collector"


def _ops_collector() -> Any:
    """One scrape-time collector per app (queue depth, live workers); None without Redis."""
    extensions = current_app.extensions
    if _COLLECTOR not in extensions:
        extensions[_COLLECTOR] = metrics.ops_collector_for(services().settings)
    return extensions[_COLLECTOR]


@bp.get("/metrics")
def scrape() -> Response:
    token = services().settings.metrics_token
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
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
