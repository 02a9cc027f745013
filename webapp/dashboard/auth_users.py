"""Dashboard sign-in: session login, role checks, CSRF tokens. All of the dashboard's auth lives here.

- Passwords: ``shoprank.users`` (scrypt hashes); the login answers the same for a wrong email and a wrong password.
- Sessions: Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure on HTTPS), cleared and re-issued at
  login so a planted session id cannot survive it; a user deactivated in the database is signed out at once.
- CSRF: a random per-session token, required in the ``csrf_token`` field (or ``X-CSRF-Token`` header) of every
  state-changing request to the dashboard, compared in constant time. SameSite=Lax already stops most cross-site
  posts; the token covers the rest (same-site subdomains, older browsers).

The rerank APIs' bearer keys are a different mechanism (``webapp.auth``). Lockout, rate limiting and security
headers are left to the ops/security work, which can hook into :func:`login_attempt`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, g, redirect, request, session, url_for

from shoprank.users import User, authenticate

F = TypeVar("F", bound=Callable[..., Any])
SESSION_USER = "dashboard_user_id"
SESSION_CSRF = "dashboard_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DASHBOARD_ROLES = ("merchandiser", "admin")


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
    """``before_request`` for the dashboard blueprint: 400 for a state-changing request without the token."""
    if request.method in UNSAFE_METHODS and not csrf_valid():
        abort(400, description="The form expired or did not come from this site. Reload the page and try again.")


def current_user() -> User | None:
    if "dashboard_user" in g:
        return g.dashboard_user
    from webapp import services

    user_id = session.get(SESSION_USER)
    user = services().db.scoped().get(User, user_id) if isinstance(user_id, int) else None
    if user is not None and not user.active:
        session.pop(SESSION_USER, None)
        user = None
    g.dashboard_user = user
    return user


def _safe_next(target: str | None) -> str:
    """Only local dashboard paths: an attacker-supplied ``next`` must not redirect off-site."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.experiment_list")


def login_attempt(email: str, password: str) -> User | None:
    """Check credentials and start the session; the single place a later lockout/rate limit hooks into."""
    from webapp import services

    db_session = services().db.scoped()
    user = authenticate(db_session, email, password)
    if user is None:
        db_session.rollback()
        return None
    db_session.commit()
    session.clear()  # a fresh session (and CSRF token) at every login
    session[SESSION_USER] = user.id
    session.permanent = True
    csrf_token()
    g.dashboard_user = user
    return user


def logout() -> None:
    session.clear()
    g.pop("dashboard_user", None)


def login_required(*roles: str) -> Callable[[F], F]:
    """Redirect anonymous visitors to the login page; 403 for a signed-in user without one of ``roles``."""
    allowed = roles or DASHBOARD_ROLES

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            if not user.has_role(*allowed):
                abort(403, description=f"The {user.role} role cannot open this page.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def init_app(app: Flask, *, production: bool) -> None:
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SECURE", production)  # production runs behind HTTPS
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", 12 * 3600)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["dashboard_user"] = current_user
