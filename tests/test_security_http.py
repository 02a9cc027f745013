"""HTTP-level security: headers on every response, cookie flags, per-IP limits on the public JSON API
(in process, through Redis, behind a trusted proxy), production refusals, and a static check that templates
and SVG charts carry no inline script, event handler or style (the CSP forbids them)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from shoprank.config import ConfigError, Settings
from tests.conftest import free_port
from tests.security_support import in_one_window
from webapp.ratelimit import MemoryRateLimiter, RedisRateLimiter
from webapp.security import CONTENT_SECURITY_POLICY, PUBLIC_LIMITER

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"env": "production", "secret_key": "s" * 43}


def _app(shop_services, **settings):
    from webapp import create_app

    return create_app(shop_services.settings.replace(**settings), services=shop_services)


# --- headers and cookies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/search?q=shoes", "/api/search?q=shoes", "/dashboard/login", "/health", "/no/such/page"]
)
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    headers = response.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # not outside production (plain-HTTP laptops)
    if path.startswith("/dashboard"):
        assert headers["Cache-Control"] == "no-store"


def _cookie(response, name: str) -> str:
    found = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


def test_cookies_are_httponly_and_samesite_lax(client):
    home = client.get("/?lang=de")
    visitor, language = _cookie(home, "sr_vid"), _cookie(home, "sr_lang")
    session = _cookie(client.get("/dashboard/login"), "session")
    for cookie in (visitor, language, session):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # development over plain HTTP: the browser would drop a Secure cookie


def test_production_cookies_are_secure_and_hsts_is_sent(shop_services):
    client = _app(shop_services, **PRODUCTION).test_client()
    home = client.get("/?lang=de")
    assert home.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookies = (_cookie(home, "sr_vid"), _cookie(home, "sr_lang"), _cookie(client.get("/dashboard/login"), "session"))
    for cookie in cookies:
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- public API rate limit -----------------------------------------------------------------------------------------


def test_public_api_limit_per_ip_is_429_json_with_retry_after(shop_services):
    app = _app(shop_services, public_rate_limit_per_minute=3)
    client = app.test_client()

    def run():
        app.extensions[PUBLIC_LIMITER]._windows.clear()
        return [
            client.post("/api/events", data="{", content_type="application/json"),  # counted even when invalid
            client.get("/api/search?q=headphones&limit=2"),
            client.post("/api/events", data="{", content_type="application/json"),
            client.get("/api/search?q=headphones&limit=2"),  # 4th from this address
            client.get("/api/search?q=headphones", environ_base={"REMOTE_ADDR": "10.1.2.3"}),
            client.get("/search?q=headphones"),  # the search page shares the address's budget (issue 22 item 10)
        ]

    responses = in_one_window(run)
    assert [r.status_code for r in responses] == [400, 200, 400, 429, 200, 429]
    assert responses[5].content_type.startswith("text/html") and int(responses[5].headers["Retry-After"]) >= 1
    limited = responses[3]
    assert limited.get_json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_public_limit_zero_is_off(shop_services):
    client = _app(shop_services, public_rate_limit_per_minute=0).test_client()
    assert {client.post("/api/events", data="{", content_type="application/json").status_code for _ in range(5)} == {
        400
    }


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(shop_services):
    """Without SHOPRANK_TRUSTED_PROXIES a client could rotate X-Forwarded-For to dodge its limit."""

    def statuses(app, addresses):
        client = app.test_client()
        app.extensions[PUBLIC_LIMITER]._windows.clear()
        return [
            client.post(
                "/api/events", data="{", content_type="application/json", headers={"X-Forwarded-For": address}
            ).status_code
            for address in addresses
        ]

    untrusted = _app(shop_services, public_rate_limit_per_minute=1)
    trusted = _app(shop_services, public_rate_limit_per_minute=1, trusted_proxies=1)
    spoofed = ["203.0.113.1", "203.0.113.2"]
    assert in_one_window(lambda: statuses(untrusted, spoofed)) == [400, 429]
    assert in_one_window(lambda: statuses(trusted, spoofed)) == [400, 400]  # two clients behind our proxy
    assert in_one_window(lambda: statuses(trusted, ["203.0.113.9", "203.0.113.9"])) == [400, 429]


def test_redis_limiter_is_shared_between_processes(redis_url, unique_prefix):
    first = RedisRateLimiter(redis_url, "test", 3, prefix=unique_prefix)
    second = RedisRateLimiter(redis_url, "test", 3, prefix=unique_prefix)
    other_key = RedisRateLimiter(redis_url, "test", 3, prefix=unique_prefix)

    def run():
        results = [limiter.allow("203.0.113.5")[0] for limiter in (first, second, first, second)]
        return results + [other_key.allow("203.0.113.6")[0]]

    assert in_one_window(run) == [True, True, True, False, True]
    assert 1 <= first.allow("203.0.113.5")[1] <= 61


def test_redis_down_lets_requests_through():
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", "test", 1)
    assert [limiter.allow("a")[0] for _ in range(3)] == [True, True, True]


def test_memory_limiter_counts_per_key():
    limiter = MemoryRateLimiter(2)

    def run():
        limiter._windows.clear()
        return [limiter.allow(key)[0] for key in "aaab"]

    assert in_one_window(run) == [True, True, False, True]


# --- production refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "SHOPRANK_SECRET_KEY must be set"),
        ({"SHOPRANK_SECRET_KEY": "short-but-not-default"}, "at least 32"),
        ({"SHOPRANK_SECRET_KEY": "k" * 40, "SHOPRANK_API_AUTH_REQUIRED": "0"}, "API_AUTH_REQUIRED=0 is refused"),
        ({"SHOPRANK_SECRET_KEY": "k" * 40, "SHOPRANK_LOGIN_MAX_FAILURES": "0"}, "unlimited password guessing"),
        ({"SHOPRANK_SECRET_KEY": "k" * 40, "SHOPRANK_LOGIN_RATE_LIMIT_PER_MINUTE": "0"}, "unlimited password"),
    ],
)
def test_production_refuses_insecure_settings(environ, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"SHOPRANK_ENV": "production", **environ})
    Settings.from_env({"SHOPRANK_ENV": "development", **environ})  # fine on a laptop


def test_production_accepts_a_secure_configuration():
    settings = Settings.from_env({"SHOPRANK_ENV": "production", "SHOPRANK_SECRET_KEY": "k" * 43})
    assert settings.api_auth_required and settings.login_max_failures > 0


@pytest.mark.parametrize(
    "name", ["PUBLIC_RATE_LIMIT_PER_MINUTE", "LOGIN_RATE_LIMIT_PER_MINUTE", "LOGIN_MAX_FAILURES", "TRUSTED_PROXIES"]
)
def test_negative_security_settings_are_refused(name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({f"SHOPRANK_{name}": "-1"})


# --- no inline script or style anywhere the CSP applies ------------------------------------------------------------

INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "event handler attribute": re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE),
    "style attribute": re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def _inline_findings(name: str, text: str) -> list[str]:
    return [f"{name}: {kind}: {m.group(0)[:80]}" for kind, rx in INLINE.items() for m in rx.finditer(text)]


def test_templates_have_no_inline_scripts_handlers_or_styles():
    templates = sorted((ROOT / "webapp" / "templates").rglob("*.html"))
    assert len(templates) >= 10
    findings = [f for path in templates for f in _inline_findings(str(path.relative_to(ROOT)), path.read_text())]
    assert findings == []


def test_charts_have_no_inline_styles_or_handlers():
    from webapp.dashboard.charts import LiftRow, SeriesPoint, lift_chart, outcome_bar, progress_bar, series_chart

    day = dt.date(2025, 1, 1)
    points = [SeriesPoint(day + dt.timedelta(days=i), 0.01 * i, -0.1, 0.1 + 0.01 * i) for i in range(5)]
    charts = {
        "lift_chart": lift_chart([LiftRow("CTR · b", 0.05, -0.01, 0.11, "better"), LiftRow("x", None, None, None, "")]),
        "series_chart": series_chart(points),
        "series_chart(empty)": series_chart([]),
        "progress_bar": progress_bar(0.4),
        "outcome_bar": outcome_bar(10, 3, 12),
    }
    findings = [f for name, svg in charts.items() for f in _inline_findings(name, str(svg))]
    assert findings == []


def test_rendered_pages_have_no_inline_scripts_handlers_or_styles(client):
    for path in ("/", "/search?q=headphones&lang=ar", "/dashboard/login", "/no/such/page"):
        assert _inline_findings(path, client.get(path).get_data(as_text=True)) == []
