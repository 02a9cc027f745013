"""``/health`` (liveness), ``/ready`` (dependencies), ``/openapi.json``."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

from shoprank import migrate
from webapp import services
from webapp.openapi import openapi_document

bp = Blueprint("health", __name__)


def _scorer_summary() -> dict[str, Any] | None:
    info = services().scorer_info()
    if info is None:
        return None
    return {key: info.get(key) for key in ("model_id", "kind", "backend", "device", "dtype", "fallback_reason")}


@bp.get("/health")
def health() -> Any:
    """The process is up. Also says which scorer answers, so a fallback is visible at a glance."""
    app = services()
    scorer = _scorer_summary()
    return {
        "status": "ok",
        "uptime_seconds": round(time.time() - app.started_at, 1),
        "rerank_mode": app.dispatcher.describe().get("mode"),
        "scorer": scorer,
        "scorer_fallback": bool(scorer and scorer.get("kind") == "bi-encoder-fallback"),
    }


def _check_database() -> dict[str, Any]:
    app = services()
    try:
        with app.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = migrate.current_revision(app.db.url)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    head = migrate.head_revision()
    if revision != head:
        return {"ok": False, "error": f"schema at {revision}, expected {head}: run `shoprank db upgrade`"}
    return {"ok": True, "dialect": app.db.dialect, "revision": revision}


def _check_redis() -> dict[str, Any] | None:
    url = services().settings.redis_url
    if not url:
        return None
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


@bp.get("/ready")
def ready() -> Any:
    """Ready to serve searches: database migrated, catalog loaded, Redis (if configured), a reranker answering."""
    app = services()
    checks: dict[str, Any] = {"database": _check_database()}
    redis_check = _check_redis()
    if redis_check is not None:
        checks["redis"] = redis_check
    try:
        products = app.index.size
        checks["catalog"] = {"ok": products > 0, "products": products}
    except Exception as exc:
        checks["catalog"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        workers = app.dispatcher.describe()
        checks["reranker"] = {"ok": bool(workers.get("ok", True)), **workers}
    except Exception as exc:
        checks["reranker"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    # The catalog and the reranker degrade searches (empty results, first-stage order) but do not stop them.
    essential = ("database", "redis")
    ok = all(checks[name]["ok"] for name in essential if name in checks)
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
    return jsonify(openapi_document())
