"""Bearer API keys and per-key rate limits for the rerank APIs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from shoprank.apikeys import find_active_key
from shoprank.db import utcnow
from webapp.context import app_services
from webapp.errors import ApiError
from webapp.ratelimit import enforce

P = ParamSpec("P")
R = TypeVar("R")
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one last_used_at write per key per minute


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(view: Callable[P, R]) -> Callable[P, R]:
    """401 without a valid, unrevoked key (when auth is on); 429 past the key's per-minute budget."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        app = app_services()
        if not app.settings.api_auth_required:
            g.api_key_id = None
            return view(*args, **kwargs)
        token = _bearer_token()
        challenge = {"WWW-Authenticate": 'Bearer realm="shoprank"'}
        if token is None:
            raise ApiError(
                401, "missing_api_key", "send an API key as 'Authorization: Bearer <key>'", headers=challenge
            )
        session = app.db.scoped()
        key = find_active_key(session, token)
        if key is None:
            raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked", headers=challenge)
        now = utcnow()
        last = key.last_used_at
        if last is not None and last.tzinfo is None:  # SQLite returns naive UTC
            last = last.replace(tzinfo=now.tzinfo)
        if last is None or now - last > _LAST_USED_RESOLUTION:
            key.last_used_at = now
            session.commit()
        enforce(app.rate_limiter, key.id, "for this API key")
        g.api_key_id = key.id
        return view(*args, **kwargs)

    return wrapper
