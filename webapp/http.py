"""Request plumbing: strict JSON bodies, request ids, the visitor cookie."""

from __future__ import annotations

import contextlib
import json
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, abort, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from shoprank.observability.logs import request_id_var, valid_request_id
from shoprank.storable_text import first_unstorable_field
from webapp.errors import ApiError, wants_json

REQUEST_ID_HEADER = "X-Request-ID"
VISITOR_COOKIE = "sr_vid"
_VISITOR_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """JSON numbers past float range (``1e999``) would parse to ``inf`` and be answered as ``Infinity``, which
    is not JSON: refuse them where the body is read, once for every endpoint."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is outside the range of a double")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """JSON may escape lone surrogates (``"\\ud800"``); they are not text and no database will store them."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_body() -> Any:
    """The parsed body; a clear 400 for an empty body, non-UTF-8 bytes or invalid JSON (413 past the size cap)."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length  # the app's MAX_CONTENT_LENGTH unless the endpoint set a tighter one
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body has no Content-Length to refuse up front; servers that stream it (gunicorn, werkzeug)
        # hand werkzeug a stream it cuts at the limit, so a full-length read means there was more: 413.
        raise RequestEntityTooLarge()
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"the request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # e.g. 100k nested arrays: the parser's recursion, not a server fault
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
    if _has_lone_surrogate(data):
        raise ApiError(400, "invalid_encoding", "the request body contains an unpaired UTF-16 surrogate escape")
    return data


def json_object() -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", f"expected a JSON object, got {type(data).__name__}")
    return data


def reject_unstorable(fields: Iterable[tuple[str, str]], kind: str) -> None:
    """400 naming the first of ``(name, value)`` that holds text storage refuses (``shoprank.storable_text``).

    JSON paths get the ``{"error"}`` body, pages the error page; either way nothing reaches the database.
    """
    found = first_unstorable_field(fields)
    if found is None:
        return
    name, problem = found
    message = f"{kind} {name!r} {problem}"
    if wants_json():
        raise ApiError(400, "invalid_text", message, details=[f"{name}: {problem}"])
    abort(400, description=message)


def reject_unstorable_path_params() -> None:
    """``before_request``: URL path parameters are ids looked up in storage (``/dashboard/experiments/%00``)."""
    params = (request.view_args or {}).items()
    reject_unstorable(((name, value) for name, value in params if isinstance(value, str)), "path parameter")


def reject_unstorable_form_fields() -> None:
    """``before_request`` for pages whose query and form fields are stored or looked up (the dashboard)."""
    reject_unstorable(request.args.items(multi=True), "query parameter")
    reject_unstorable(request.form.items(multi=True), "form field")


def current_request_id() -> str:
    return g.get("request_id") or "-"


def visitor_id() -> str | None:
    """The shop visitor's id (cookie), created on first page view; None for cookieless API clients."""
    if "visitor_id" in g:
        known: str | None = g.visitor_id
        return known
    value = request.cookies.get(VISITOR_COOKIE, "")
    return value if _VISITOR_ID.match(value) else None


def ensure_visitor_id() -> str:
    current = visitor_id()
    if current is None:
        current = str(uuid.uuid4())
        g.visitor_id = current
        g.set_visitor_cookie = True
    return current


def install_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = valid_request_id(incoming) or uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)  # log lines of this request carry its id

    app.before_request(reject_unstorable_path_params)

    @app.teardown_request
    def unbind_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            with contextlib.suppress(ValueError):  # set in another (copied) context, which dies with it
                request_id_var.reset(token)

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = current_request_id()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if g.get("set_visitor_cookie"):
            response.set_cookie(
                VISITOR_COOKIE,
                g.visitor_id,
                max_age=VISITOR_COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),  # as the session
            )
        return response
