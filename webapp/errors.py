"""One error shape for every JSON endpoint: ``{"error": {"code", "message"}}`` with a fitting 4xx/5xx.

HTML pages get an HTML error page instead; nothing ever shows a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from shoprank.db import is_database_unavailable, is_statement_timeout
from webapp.context import app_services

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying after ``database_unavailable`` (events are idempotent by id).
DATABASE_RETRY_AFTER_SECONDS = 5

#: Paths whose clients expect JSON errors.
JSON_PREFIXES = ("/api/", "/v1/", "/v2/", "/rerank", "/health", "/ready", "/openapi.json")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    return response


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            message = exc.description or exc.name
            if status == 413:
                message = f"the request body is larger than {request.max_content_length} bytes"
            response = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
            if status == 405 and isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        # the dashboard's errors (a role that cannot open a page) stay in the dashboard's layout, not the shop's
        template = "dashboard/error.html" if request.blueprint == "dashboard" else "error.html"
        return render_template(template, status=status, message=exc.description or exc.name), status

    @app.errorhandler(sa_exc.DBAPIError)
    @app.errorhandler(sa_exc.TimeoutError)
    def database_error(exc: Exception) -> Any:
        """The database is down or unreachable: 503 + Retry-After, never a stack trace; other DB errors are 500s."""
        _rollback_request_session()
        if is_statement_timeout(exc):
            seconds = app_services().settings.dashboard_statement_timeout_ms / 1000
            log.warning("statement timeout (%g s) on %s %s", seconds, request.method, request.path)
            message = f"This page's query took longer than {seconds:g} s and was cancelled; narrow the range or retry."
            if wants_json():
                return error_response(503, "query_timeout", message)
            return render_template("error.html", status=503, message=message), 503
        if not is_database_unavailable(exc):
            return unexpected(exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.path, str(exc).splitlines()[0])
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
        if wants_json():
            response = error_response(
                503,
                "database_unavailable",
                f"the database is unavailable; nothing was stored, retry in {DATABASE_RETRY_AFTER_SECONDS} s",
            )
            response.headers.update(retry)
            return response
        page = render_template("error.html", status=503, message="The shop is briefly unavailable; please retry.")
        return page, 503, retry

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return error_response(500, "internal_error", "an internal error occurred; it has been logged")
        return render_template("error.html", status=500, message="Something went wrong on our side."), 500


def _rollback_request_session() -> None:
    """Roll the request's scoped session back so the next request on this thread starts clean."""
    try:
        app_services().db.scoped.rollback()
    except Exception:  # rolling back over a dead connection can fail too; remove() at teardown discards it
        log.debug("rollback after a database error failed", exc_info=True)
