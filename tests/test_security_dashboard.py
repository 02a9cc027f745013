"""Dashboard security over the whole ``app.url_map``, so a route added later is covered without editing this file:

- every /dashboard endpoint declares its roles (``login_required`` records them) or is on the public list;
- anonymous → login redirect (401 for a JSON client), a role not allowed → 403, an allowed role → not 403;
- every POST/PUT/PATCH/DELETE under /dashboard refuses a request without the CSRF token (400), accepts it with.

Plus the admin pages themselves (users: create/deactivate/reactivate/unlock; API keys: create shown once/revoke)
and login lockout / per-IP throttling (in process and through Redis across two apps).
"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from experiments.manage import create_experiment
from shoprank.apikeys import ApiKey, create_api_key, find_active_key
from shoprank.users import ROLES, User, create_user
from tests.experiment_support import ab_spec, reset_experiments
from tests.security_support import in_one_window
from webapp.dashboard.auth_users import PUBLIC_ENDPOINTS, ROLES_ATTRIBUTE, SESSION_CSRF
from webapp.security import LOGIN_LIMITER

PASSWORD = "correct horse battery"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def world(shop_services, shop_app):
    """One user per role, a victim user, an experiment and an API key to point URL parameters at."""
    reset_experiments(shop_services)
    shop_app.extensions[LOGIN_LIMITER].limit = 0  # the walk signs in many times from one address
    with shop_services.db.session() as session:
        for role in ROLES:
            create_user(session, f"{role}@example.com", PASSWORD, role)
        victim = create_user(session, "victim@example.com", PASSWORD, "merchandiser")
        experiment = create_experiment(session, ab_spec("sec-walk"), "tests")
        key, _ = create_api_key(session, f"walk-{uuid.uuid4().hex[:6]}")
        params = {"user_id": victim.id, "key": experiment.key, "key_id": key.id}
    yield shop_app, params
    reset_experiments(shop_services)


def _token(client) -> str:
    client.get("/dashboard/login")  # makes sure the session has a token
    with client.session_transaction() as session:
        return session[SESSION_CSRF]


def _signed_in(app, role: str | None):
    client = app.test_client()
    if role is not None:
        response = client.post(
            "/dashboard/login",
            data={"email": f"{role}@example.com", "password": PASSWORD, "csrf_token": _token(client)},
        )
        assert response.status_code == 302, f"{role} could not sign in"
    return client


def _dashboard_rules(app):
    """(rule, method, allowed roles or None) for every route under /dashboard, logout last (it ends sessions)."""
    rows = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/dashboard") or rule.endpoint == "static":
            continue
        roles = getattr(app.view_functions[rule.endpoint], ROLES_ATTRIBUTE, None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rows.append((rule, method, roles))
    return sorted(rows, key=lambda row: (row[0].endpoint == "dashboard.logout", row[0].rule, row[1]))


def _url(rule, params) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = params.get(name, 1 if type(converter).__name__ == "IntegerConverter" else "x")
    return rule.build(values, append_unknown=False)[1]


def _request(client, method: str, url: str, *, token: str | None, json_client: bool = False):
    headers = {"Accept": "application/json"} if json_client else {}
    data = {"csrf_token": token} if token else {}
    return client.open(url, method=method, data=data, headers=headers)


def test_every_dashboard_endpoint_declares_roles(world):
    app, _ = world
    missing = sorted(
        {
            rule.endpoint
            for rule, _method, roles in _dashboard_rules(app)
            if roles is None and rule.endpoint not in PUBLIC_ENDPOINTS
        }
    )
    assert missing == [], f"dashboard endpoints without login_required(...): {missing}"
    assert {rule.endpoint for rule, _m, _r in _dashboard_rules(app)} >= {
        "dashboard.admin_users",
        "dashboard.admin_api_keys",
        "dashboard.experiment_list",
    }


def test_roles_over_the_url_map(world):
    app, params = world
    rules = [(rule, method, roles) for rule, method, roles in _dashboard_rules(app) if roles is not None]
    assert rules
    anonymous = app.test_client()
    anonymous_token = _token(anonymous)
    for rule, method, _roles in rules:
        url = _url(rule, params)
        response = _request(anonymous, method, url, token=anonymous_token)
        assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"], (method, url)
        as_json = _request(anonymous, method, url, token=anonymous_token, json_client=True)
        assert as_json.status_code == 401 and as_json.get_json()["error"]["code"] == "unauthorized", (method, url)

    for role in ROLES:
        client = _signed_in(app, role)
        token = _token(client)
        for rule, method, roles in rules:
            url = _url(rule, params)
            response = _request(client, method, url, token=token)
            if role in roles:
                assert response.status_code != 403, (role, method, url)
                assert response.status_code < 500, (role, method, url, response.status_code)
            else:
                assert response.status_code == 403, (role, method, url, response.status_code)


def test_every_unsafe_dashboard_route_needs_the_csrf_token(world):
    app, params = world
    unsafe = [(rule, method) for rule, method, _roles in _dashboard_rules(app) if method in UNSAFE]
    assert {rule.endpoint for rule, _ in unsafe} >= {"dashboard.login", "dashboard.admin_user_create"}
    for rule, method in unsafe:
        url = _url(rule, params)
        client = _signed_in(app, "admin")
        refused = _request(client, method, url, token=None)
        assert refused.status_code == 400, (method, url, refused.status_code)
        wrong = _request(client, method, url, token="not-the-token")
        assert wrong.status_code == 400, (method, url, wrong.status_code)
        accepted = _request(client, method, url, token=_token(client))
        assert accepted.status_code != 400 and accepted.status_code < 500, (method, url, accepted.status_code)


def test_admin_manages_users(world, shop_services):
    app, params = world
    admin = _signed_in(app, "admin")
    page = admin.get("/dashboard/admin/users")
    assert page.status_code == 200 and "victim@example.com" in page.get_data(as_text=True)
    token = _token(admin)
    created = admin.post(
        "/dashboard/admin/users",
        data={"email": "New.Ops@example.com", "role": "ops", "password": "ten chars or more", "csrf_token": token},
    )
    assert created.status_code == 302
    bad = admin.post(
        "/dashboard/admin/users",
        data={"email": "x@example.com", "role": "ops", "password": "short", "csrf_token": token},
    )
    assert bad.status_code == 422 and "at least 10 characters" in bad.get_data(as_text=True)
    with shop_services.db.session() as session:
        assert session.scalar(select(User.role).where(User.email == "new.ops@example.com")) == "ops"

    victim = _signed_in(app, None)
    victim.post(
        "/dashboard/login",
        data={"email": "victim@example.com", "password": PASSWORD, "csrf_token": _token(victim)},
    )
    assert victim.get("/dashboard/").status_code == 200
    user_id = params["user_id"]
    assert admin.post(f"/dashboard/admin/users/{user_id}/deactivate", data={"csrf_token": token}).status_code == 302
    assert victim.get("/dashboard/").status_code == 302  # signed out at the next request
    assert admin.post(f"/dashboard/admin/users/{user_id}/reactivate", data={"csrf_token": token}).status_code == 302
    with shop_services.db.session() as session:
        me = session.scalar(select(User).where(User.email == "admin@example.com"))
        assert session.get(User, user_id).active
    admin.post(f"/dashboard/admin/users/{me.id}/deactivate", data={"csrf_token": token})
    assert admin.get("/dashboard/admin/users").status_code == 200  # an admin cannot lock themselves out


def test_admin_api_key_shown_once_and_revoked(world, shop_services):
    app, _ = world
    admin = _signed_in(app, "admin")
    token = _token(admin)
    created = admin.post("/dashboard/admin/api-keys", data={"name": "partner feed", "csrf_token": token})
    assert created.status_code == 201
    plaintext = re.search(r'<code class="secret">(srk_[^<]+)</code>', created.get_data(as_text=True)).group(1)
    listing = admin.get("/dashboard/admin/api-keys").get_data(as_text=True)
    assert "partner feed" in listing and plaintext not in listing  # shown once
    with shop_services.db.session() as session:
        key = find_active_key(session, plaintext)
        assert key is not None and key.name == "partner feed"
        key_id = key.id
    assert admin.post(f"/dashboard/admin/api-keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 302
    with shop_services.db.session() as session:
        assert session.get(ApiKey, key_id).revoked_at is not None
    assert admin.post("/dashboard/admin/api-keys", data={"name": " ", "csrf_token": token}).status_code == 422


# --- lockout and throttling ------------------------------------------------------------------------------------------


def _attempt(client, email: str, password: str):
    return client.post("/dashboard/login", data={"email": email, "password": password, "csrf_token": _token(client)})


def test_lockout_after_failures_and_same_answer_for_everything(world, shop_services):
    app, params = world
    client = app.test_client()
    limit = shop_services.settings.login_max_failures
    answers = []
    for _ in range(limit):
        response = _attempt(client, "victim@example.com", "wrong password!!")
        answers.append((response.status_code, response.get_data(as_text=True)))
    unknown = _attempt(client, "nobody@example.com", "wrong password!!")
    locked = _attempt(client, "victim@example.com", PASSWORD)  # right password, but locked now
    assert locked.status_code == 401
    bodies = {_csrf_free(body) for _status, body in answers} | {
        _csrf_free(unknown.get_data(as_text=True)),
        _csrf_free(locked.get_data(as_text=True)),
    }
    assert len(bodies) == 1 and {status for status, _ in answers} == {401}  # no account enumeration
    assert "wait" in bodies.pop()
    with shop_services.db.session() as session:
        victim = session.get(User, params["user_id"])
        assert victim.locked() and victim.failed_logins == 0

    admin = _signed_in(app, "admin")
    listing = admin.get("/dashboard/admin/users").get_data(as_text=True)
    assert "locked" in listing
    unlock = admin.post(f"/dashboard/admin/users/{params['user_id']}/unlock", data={"csrf_token": _token(admin)})
    assert unlock.status_code == 302
    assert _attempt(client, "victim@example.com", PASSWORD).status_code == 302


def test_a_success_resets_the_failure_count(world, shop_services):
    app, params = world
    client = app.test_client()
    for _ in range(shop_services.settings.login_max_failures - 1):
        assert _attempt(client, "victim@example.com", "wrong password!!").status_code == 401
    assert _attempt(client, "victim@example.com", PASSWORD).status_code == 302
    with shop_services.db.session() as session:
        victim = session.get(User, params["user_id"])
        assert victim.failed_logins == 0 and not victim.locked()


def _csrf_free(html: str) -> str:
    """The page without what legitimately differs: the CSRF token and the echoed email."""
    return re.sub(r'name="(csrf_token|email)" value="[^"]*"', "", html)


def test_per_ip_login_limit_is_429_with_retry_after(world):
    app, _ = world
    app.extensions[LOGIN_LIMITER].limit = 3
    client = app.test_client()

    def four_attempts():
        app.extensions[LOGIN_LIMITER]._windows.clear()
        return [_attempt(client, f"nobody{i}@example.com", "wrong password!!") for i in range(4)]

    *first, throttled = in_one_window(four_attempts)
    statuses = [response.status_code for response in first]
    assert statuses == [401, 401, 401] and throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "Too many sign-in attempts" in throttled.get_data(as_text=True)
    other_ip = app.test_client()
    other = other_ip.post(
        "/dashboard/login",
        data={"email": "nobody@example.com", "password": "x", "csrf_token": _token(other_ip)},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert other.status_code == 401  # the limit is per address


def test_login_limit_is_shared_through_redis(shop_db_url, redis_url, unique_prefix):
    """Two apps (two processes' worth of state) with one Redis: together they get the budget once."""
    from tests.shop_support import build_test_services, fallback_dispatcher
    from webapp import create_app

    services = build_test_services(
        shop_db_url,
        dispatcher=fallback_dispatcher(),
        redis_url=redis_url,
        cache_key_prefix=unique_prefix,
        login_rate_limit_per_minute=4,
    )
    try:
        apps = [create_app(services=services), create_app(services=services)]

        def six_attempts() -> list[int]:
            return [
                _attempt(apps[i % 2].test_client(), "nobody@example.com", "wrong password!!").status_code
                for i in range(6)
            ]

        statuses = in_one_window(six_attempts)
        assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}, statuses
    finally:
        services.close()


def test_cli_unlocks_a_locked_account(shop_db_url, shop_services):
    from click.testing import CliRunner

    from shopctl.cli import cli
    from shoprank.users import authenticate

    reset_experiments(shop_services)
    with shop_services.db.session() as session:
        create_user(session, "locked@example.com", PASSWORD, "admin")
        assert authenticate(session, "locked@example.com", "wrong password!!", max_failures=1) is None
    with shop_services.db.session() as session:
        assert authenticate(session, "locked@example.com", PASSWORD, max_failures=1) is None  # locked
    env = {"SHOPRANK_DATABASE_URL": shop_db_url, "SHOPRANK_ENV": "test", "SHOPRANK_RERANKER_ALLOW_DOWNLOAD": "0"}
    result = CliRunner().invoke(cli, ["user", "unlock", "--email", "Locked@example.com"], env=env)
    assert result.exit_code == 0 and "unlocked locked@example.com" in result.output, result.output
    with shop_services.db.session() as session:
        assert authenticate(session, "locked@example.com", PASSWORD, max_failures=1) is not None
    missing = CliRunner().invoke(cli, ["user", "unlock", "--email", "nobody@example.com"], env=env)
    assert missing.exit_code != 0 and "no user" in missing.output
    reset_experiments(shop_services)
