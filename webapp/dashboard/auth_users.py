"""Dashboard sign-in: session login, role checks, CSRF tokens. All of the dashboard's auth lives here.

- Passwords: ``shoprank.users`` (scrypt hashes); the login answers the same for a wrong email and a wrong password.
- Sessions: Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure on HTTPS), cleared and re-issued at
  login so a planted session id cannot survive it. The cookie is signed, not stored, so revocation is
  server-side: it carries the user's ``session_epoch`` from login, and logout, a password or role change and
  deactivation bump that number, which ends every earlier session at its next request (a copied cookie too).
- CSRF: a random per-session token, required in the ``csrf_token`` field (or ``X-CSRF-Token`` header) of every
  state-changing request to the dashboard, compared in constant time. SameSite=Lax already stops most cross-site
  posts; the token covers the rest (same-site subdomains, older browsers).

- Guessing: :func:`login_attempt` first spends one unit of the client IP's per-minute budget
  (``SHOPRANK_LOGIN_RATE_LIMIT_PER_MINUTE``, Redis-backed when configured → 429 + Retry-After), then
  ``shoprank.users.authenticate`` counts wrong passwords on the user row and locks the account for
  ``SHOPRANK_LOGIN_LOCKOUT_SECONDS`` after ``SHOPRANK_LOGIN_MAX_FAILURES``. The page answers a wrong email, a wrong
  password and a locked account with the same 401 and words, so neither reveals which accounts exist.
- Roles: :func:`login_required` records the roles it allows on the view (``view.allowed_roles``); a test walks
  ``app.url_map`` and fails for any dashboard endpoint that declares none.

The rerank APIs' bearer keys are a different mechanism (``webapp.auth``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, ParamSpec

from flask import Flask, abort, g, redirect, request, session, url_for

from shoprank.users import User, authenticate, revoke_sessions
from webapp.context import app_services

P = ParamSpec("P")
SESSION_USER = "dashboard_user_id"
SESSION_EPOCH = "dashboard_epoch"
SESSION_CSRF = "dashboard_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DASHBOARD_ROLES = ("merchandiser", "admin")
#: The attribute :func:`login_required` sets on a view: the roles that may open it (admin always may).
ROLES_ATTRIBUTE = "allowed_roles"
#: Endpoints under /dashboard that are open to anonymous visitors on purpose.
PUBLIC_ENDPOINTS = frozenset({"dashboard.login", "dashboard.logout"})


def csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def csrf_valid() -> bool:
    expected = session.get(SESSION_CSRF)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return bool(expected) and hmac.compare_digest(str(expected).encode(), sent.encode())


def protect_csrf() -> None:
    """``before_request`` for the dashboard blueprint: 400 for a state-changing request without the token.

    Only the dashboard needs it, because only the dashboard takes its authority from a cookie, which the browser
    attaches to a forged cross-site request too. Exempt on purpose: the rerank APIs (``/v1/rerank``,
    ``/v2/rerank``, ``/rerank``) authenticate with an ``Authorization: Bearer`` key that a browser never adds
    by itself, so a forged request carries no authority; and the beacon ``POST /api/events`` has no authority to
    abuse (anonymous analytics; a forged event is no worse than a real one, and the per-IP limit caps volume).
    """
    if request.method in UNSAFE_METHODS and not csrf_valid():
        abort(400, description="The form expired or did not come from this site. Reload the page and try again.")


def current_user() -> User | None:
    if "dashboard_user" in g:
        known: User | None = g.dashboard_user
        return known
    user_id = session.get(SESSION_USER)
    user = app_services().db.scoped().get(User, user_id) if isinstance(user_id, int) else None
    if user is not None and (not user.active or session.get(SESSION_EPOCH) != user.session_epoch):
        session.clear()  # deactivated, or the session predates a logout, password or role change: revoked
        user = None
    g.dashboard_user = user
    return user


def _safe_next(target: str | None) -> str:
    """Only local dashboard paths: an attacker-supplied ``next`` must not redirect off-site, and must not carry
    whitespace or control characters (CR/LF would split the ``Location`` header; werkzeug refuses it with a 500)."""
    if (
        target
        and target.startswith("/dashboard")
        and not target.startswith("//")
        and "\\" not in target
        and not any(char.isspace() or not char.isprintable() for char in target)
    ):
        return target
    return url_for("dashboard.experiment_list")


@dataclass(frozen=True)
class LoginThrottled:
    """Too many sign-in attempts from this client address; try again in ``retry_after`` seconds."""

    retry_after: int


def login_attempt(email: str, password: str) -> User | LoginThrottled | None:
    """Check credentials and start the session: the user, None (wrong, unknown or locked) or throttled."""
    from webapp.security import client_ip, login_limiter

    allowed, retry_after = login_limiter().allow(client_ip())
    if not allowed:
        return LoginThrottled(retry_after)
    settings = app_services().settings
    db_session = app_services().db.scoped()
    user = authenticate(
        db_session,
        email,
        password,
        max_failures=settings.login_max_failures,
        lockout=timedelta(seconds=settings.login_lockout_seconds),
    )
    db_session.commit()  # the failure count (or the reset and last_login_at) is stored either way
    if user is None:
        return None
    session.clear()  # a fresh session (and CSRF token) at every login
    session[SESSION_USER] = user.id
    session[SESSION_EPOCH] = user.session_epoch
    session.permanent = True
    csrf_token()
    g.dashboard_user = user
    return user


def _prefers_json() -> bool:
    """A script (fetch with Accept: application/json) gets a 401 it can act on instead of a login page."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def logout() -> None:
    """End this session and, server-side, every other session of the user: a copied cookie stops working too."""
    user = current_user()
    if user is not None:
        revoke_sessions(user)
        app_services().db.scoped().commit()
    session.clear()
    g.pop("dashboard_user", None)


def login_required(*roles: str) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Redirect anonymous visitors to the login page; 403 for a signed-in user without one of ``roles``.

    The allowed roles (admin included) are recorded on the view as ``allowed_roles`` for the url_map tests.
    """
    allowed = tuple(dict.fromkeys((*(roles or DASHBOARD_ROLES), "admin")))

    def decorate(view: Callable[P, Any]) -> Callable[P, Any]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            user = current_user()
            if user is None:
                if _prefers_json():
                    from webapp.errors import error_response

                    return error_response(401, "unauthorized", "sign in to the dashboard first")
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            if not user.has_role(*allowed):
                needed = " or ".join(allowed)
                abort(403, description=f"The {user.role} role cannot open this page: it needs a {needed} login.")
            return view(*args, **kwargs)

        setattr(wrapper, ROLES_ATTRIBUTE, allowed)
        return wrapper

    return decorate


def init_app(app: Flask, *, production: bool) -> None:
    # Assigned, not setdefault: Flask's default config already has these keys (SameSite None, Secure False,
    # 31-day sessions), so setdefault would silently keep the insecure defaults.
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=production,  # production runs behind HTTPS
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["dashboard_user"] = current_user
