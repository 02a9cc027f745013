"""``/health`` (liveness), ``/ready`` (dependencies), ``/openapi.json``.

Both probes answer everyone, but in production only authenticated ops see the details (scorer model paths,
worker host names, schema revisions): the ``SHOPRANK_METRICS_TOKEN`` bearer token that Prometheus already
sends, or a signed-in ops/admin dashboard session. Everyone else gets the status and, per check, ``ok`` and
an error *code*. A failing check's exception text (which names hosts, ports, databases and roles) goes to the
log, never into a response.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, jsonify, session
from sqlalchemy import text

from shoprank import migrate
from webapp.blueprints.metrics import has_metrics_token
from webapp.context import app_services
from webapp.openapi import openapi_document

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def show_details() -> bool:
    """Outside production always; in production for the metrics token or an ops/admin dashboard session."""
    if app_services().settings.env != "production" or has_metrics_token():
        return True
    from webapp.dashboard.auth_users import SESSION_USER, current_user

    if SESSION_USER not in session:  # no dashboard session: no database lookup (liveness must not need one)
        return False
    try:
        user = current_user()
    except Exception:  # the database is down: no details, but the probe still answers
        log.debug("could not read the dashboard user for probe details", exc_info=True)
        return False
    return user is not None and user.has_role("ops")


def _failed(check: str, code: str, exc: BaseException) -> dict[str, Any]:
    log.warning("readiness check %s failed: %s: %s", check, type(exc).__name__, (str(exc).splitlines() or [""])[0])
    return {"ok": False, "error": code}


def _scorer_summary() -> dict[str, Any] | None:
    info = app_services().scorer_info()
    if info is None:
        return None
    return {key: info.get(key) for key in ("model_id", "kind", "backend", "device", "dtype", "fallback_reason")}


@bp.get("/health")
def health() -> Any:
    """The process is up. Also says which scorer answers, so a fallback is visible at a glance."""
    app = app_services()
    if not show_details():
        return {"status": "ok"}
    scorer = _scorer_summary()
    return {
        "status": "ok",
        "uptime_seconds": round(time.time() - app.started_at, 1),
        "rerank_mode": app.dispatcher.describe().get("mode"),
        "scorer": scorer,
        "scorer_fallback": bool(scorer and scorer.get("kind") == "bi-encoder-fallback"),
    }


def _check_database() -> dict[str, Any]:
    app = app_services()
    try:
        with app.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = migrate.current_revision(app.db.url)
    except Exception as exc:
        return _failed("database", "database_unreachable", exc)
    head = migrate.head_revision()
    if revision != head:
        log.warning("readiness: schema at %s, expected %s: run `shoprank db upgrade`", revision, head)
        return {"ok": False, "error": "schema_outdated", "revision": revision, "expected_revision": head}
    return {"ok": True, "dialect": app.db.dialect, "revision": revision}


def _check_redis() -> dict[str, Any] | None:
    url = app_services().settings.redis_url
    if not url:
        return None
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        return _failed("redis", "redis_unreachable", exc)
    return {"ok": True}


@bp.get("/ready")
def ready() -> Any:
    """Ready to serve searches: database migrated, catalog loaded, Redis (if configured), a reranker answering."""
    app = app_services()
    checks: dict[str, Any] = {"database": _check_database()}
    redis_check = _check_redis()
    if redis_check is not None:
        checks["redis"] = redis_check
    try:
        products = app.index.size
        checks["catalog"] = {"ok": products > 0, "products": products}
    except Exception as exc:
        checks["catalog"] = _failed("catalog", "catalog_unavailable", exc)
    try:
        workers = app.dispatcher.describe()
        checks["reranker"] = {"ok": bool(workers.get("ok", True)), **workers}
    except Exception as exc:
        checks["reranker"] = _failed("reranker", "reranker_unavailable", exc)
    # The catalog and the reranker degrade searches (empty results, first-stage order) but do not stop them.
    essential = ("database", "redis")
    ok = all(checks[name]["ok"] for name in essential if name in checks)
    if not show_details():  # status, ok and error codes only: no revisions, counts, models or hosts
        summary = {name: {k: v for k, v in check.items() if k in ("ok", "error")} for name, check in checks.items()}
        return jsonify({"status": "ready" if ok else "unavailable", "checks": summary}), (200 if ok else 503)
    scorer = _scorer_summary()
    body = {
        "status": "ready" if ok else "unavailable",
        "checks": checks,
        "scorer": scorer,
        "scorer_fallback": bool(scorer and scorer.get("kind") == "bi-encoder-fallback"),
        "search": app.search.stats.snapshot(),
    }
    return jsonify(body), (200 if ok else 503)


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(app_services().settings))
