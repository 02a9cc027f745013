"""Dashboard sessions end server-side, and Stop asks first, through a real server (waitress):

- a copy of the session cookie taken before logout (or before a password change, deactivation or role change)
  no longer opens ``/dashboard/`` or the CSV export when replayed;
- ``POST …/stop`` stops an experiment only with its key typed into ``confirm_key``; without it the
  experiment keeps running and the confirmation page answers (422).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from experiments.store.experiment_models import Experiment
from shoprank.users import User, create_user, set_active, set_password, set_role
from tests.experiment_support import ab_spec, reset_experiments, running
from tests.live_servers import LiveServer, csrf_token_in, sign_in
from webapp.security import LOGIN_LIMITER

PASSWORD = "correct horse battery"


@pytest.fixture
def world(shop_services) -> Iterator[tuple[LiveServer, Any, str, str]]:
    """A live server, a merchandiser and a running experiment."""
    from webapp import create_app

    reset_experiments(shop_services)
    email = f"s-{uuid.uuid4().hex[:8]}@example.com"
    key = f"sess-{uuid.uuid4().hex[:6]}"
    with shop_services.db.session() as session:
        create_user(session, email, PASSWORD, "merchandiser")
    running(shop_services, ab_spec(key))
    app = create_app(services=shop_services)
    app.extensions[LOGIN_LIMITER].limit = 0
    with LiveServer(app) as server:
        yield server, shop_services, email, key
    reset_experiments(shop_services)


def _sign_in(server: LiveServer, email: str) -> requests.Session:
    return sign_in(server.url, email, PASSWORD)[0]


def _replay(server: LiveServer, cookie: str, key: str) -> list[int]:
    """Status of /dashboard/ and the CSV export for a bare copy of the session cookie (no other state)."""
    headers = {"Cookie": f"session={cookie}"}
    return [
        requests.get(f"{server.url}{path}", headers=headers, allow_redirects=False, timeout=30).status_code
        for path in ("/dashboard/", f"/dashboard/experiments/{key}/export.csv")
    ]


def _user_id(services, email: str) -> int:
    with services.db.session() as session:
        return session.scalar(select(User.id).where(User.email == email))


def test_a_cookie_copied_before_logout_is_dead_after_it(world):
    server, services, email, key = world
    http = _sign_in(server, email)
    other_device = _sign_in(server, email).cookies["session"]
    copied = http.cookies["session"]
    assert _replay(server, copied, key) == [200, 200]  # the copy works while the session is live
    logout = http.post(f"{server.url}/dashboard/logout", data={"csrf_token": http.headers["X-CSRF-Token"]}, timeout=30)
    assert logout.status_code == 200 and "Sign in" in logout.text
    assert _replay(server, copied, key) == [302, 302]  # back to the login page: the session was revoked
    assert _replay(server, other_device, key) == [302, 302]  # logout ends every earlier session of the user
    json_client = requests.get(
        f"{server.url}/dashboard/experiments/{key}/export.csv",
        headers={"Cookie": f"session={copied}", "Accept": "application/json"},
        timeout=30,
    )
    assert json_client.status_code == 401
    assert _replay(server, _sign_in(server, email).cookies["session"], key) == [200, 200]  # signing in works


@pytest.mark.parametrize("change", ["password", "deactivate", "role"])
def test_password_role_change_and_deactivation_revoke_sessions(world, change):
    server, services, email, key = world
    copied = _sign_in(server, email).cookies["session"]
    assert _replay(server, copied, key) == [200, 200]
    user_id = _user_id(services, email)
    with services.db.session() as session:
        if change == "password":
            set_password(session, email, "another long password")
        elif change == "deactivate":
            set_active(session, user_id, False)
        else:
            set_role(session, user_id, "admin")  # even a promotion: the new role starts with a new session
    if change == "deactivate":
        with services.db.session() as session:
            set_active(session, user_id, True)  # reactivating does not bring the old session back
    assert _replay(server, copied, key) == [302, 302]


def test_stop_needs_the_key_typed_on_the_server(world):
    server, services, email, key = world
    http = _sign_in(server, email)
    detail = http.get(f"{server.url}/dashboard/experiments/{key}", timeout=30).text
    assert f'href="/dashboard/experiments/{key}/stop"' in detail  # the button leads to the confirmation page
    confirm = http.get(f"{server.url}/dashboard/experiments/{key}/stop", timeout=30)
    assert confirm.status_code == 200 and 'name="confirm_key"' in confirm.text
    token = csrf_token_in(confirm.text)
    stop_url = f"{server.url}/dashboard/experiments/{key}/stop"
    for confirm_key in (None, "", "wrong", key + "x"):
        data = {"csrf_token": token} if confirm_key is None else {"csrf_token": token, "confirm_key": confirm_key}
        refused = http.post(stop_url, data=data, allow_redirects=False, timeout=30)
        assert refused.status_code == 422 and f"Type {key} exactly" in refused.text
        with services.db.session() as session:
            assert session.scalar(select(Experiment.status).where(Experiment.key == key)) == "running"
    stopped = http.post(stop_url, data={"csrf_token": token, "confirm_key": key}, allow_redirects=False, timeout=30)
    assert stopped.status_code == 302
    with services.db.session() as session:
        assert session.scalar(select(Experiment.status).where(Experiment.key == key)) == "stopped"
