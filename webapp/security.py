"""App-wide HTTP security: trusted-proxy handling, security headers, per-IP limits on the public JSON API.

Installed once by ``create_app``. What each piece defends against:

- ``ProxyFix`` only with ``SHOPRANK_TRUSTED_PROXIES=N``: ``X-Forwarded-For`` is attacker-controlled unless a
  proxy we run overwrote it, so without a trusted proxy the per-IP limits key on the socket address.
- Content-Security-Policy without ``'unsafe-inline'``: an HTML injection cannot run script or restyle the page;
  templates and SVG charts carry no inline scripts, ``on*`` handlers or ``style`` attributes (a test checks).
- ``frame-ancestors 'none'`` + ``X-Frame-Options: DENY``: no clickjacking of the dashboard's buttons.
- HSTS only in production (it pins browsers to HTTPS for a year; wrong on a laptop serving plain HTTP).
- Dashboard responses are ``Cache-Control: no-store``: experiment numbers and admin pages stay out of shared caches.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.ratelimit import RateLimiter, build_limiter, enforce

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
#: The shop's unauthenticated JSON endpoints, limited per client IP.
PUBLIC_RATE_LIMITED_ENDPOINTS = frozenset({"api.search", "api.suggest", "api.events", "rank.rank"})
#: Pages that search (each one a first-stage retrieval and maybe a rerank job): limited per address like the APIs.
PAGE_RATE_LIMITED_ENDPOINTS = frozenset({"shop.search"})
PUBLIC_LIMITER = "shoprank_public_limiter"
LOGIN_LIMITER = "shoprank_login_limiter"


def client_ip() -> str:
    """The client's address: the socket peer, or the trusted proxy's X-Forwarded-For entry (via ProxyFix)."""
    return request.remote_addr or "unknown"


def login_limiter() -> RateLimiter:
    limiter: RateLimiter = current_app.extensions[LOGIN_LIMITER]
    return limiter


def public_limiter() -> RateLimiter:
    limiter: RateLimiter = current_app.extensions[PUBLIC_LIMITER]
    return limiter


def _limit_public_api() -> Any:
    if request.endpoint in PAGE_RATE_LIMITED_ENDPOINTS:  # the same budget, answered as a page
        allowed, retry_after = public_limiter().allow(client_ip())
        if not allowed:
            message = f"Too many searches from your address; retry in {retry_after} s."
            return render_template("error.html", status=429, message=message), 429, {"Retry-After": str(retry_after)}
        return None
    if request.endpoint not in PUBLIC_RATE_LIMITED_ENDPOINTS:
        return None
    enforce(public_limiter(), client_ip(), "from your address")
    return None


def install_security(app: Flask, settings: Any) -> None:
    production = settings.env == "production"
    if settings.trusted_proxies > 0:
        n = settings.trusted_proxies
        # Flask's documented way to wrap the app in WSGI middleware: replace the wsgi_app method
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]  # see above
    app.extensions[PUBLIC_LIMITER] = build_limiter(settings, "public-ip", settings.public_rate_limit_per_minute)
    app.extensions[LOGIN_LIMITER] = build_limiter(settings, "login-ip", settings.login_rate_limit_per_minute)
    app.before_request(_limit_public_api)

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith("/dashboard"):
            response.headers["Cache-Control"] = "no-store"
        return response
