"""The app behind a real HTTP server in this process: waitress as ``shoprank serve`` builds it, or werkzeug's
threaded server (which, like gunicorn, streams a chunked body to the app instead of buffering it); and signing
in to its dashboard like a browser."""

from __future__ import annotations

import re
import threading
from typing import Any

import requests
from werkzeug.serving import make_server

from webapp.waitress_server import create_waitress_server


class LiveServer:
    """``with LiveServer(app, "waitress") as server: requests.get(server.url + "/health")``."""

    def __init__(self, app: Any, kind: str = "waitress") -> None:
        self.kind = kind
        if kind == "waitress":
            self._server = create_waitress_server(app, host="127.0.0.1", port=0, threads=8)
            port = self._server.effective_port
            self._thread = threading.Thread(target=self._server.run, name="waitress", daemon=True)
        elif kind == "werkzeug":
            self._server = make_server("127.0.0.1", 0, app, threaded=True)
            port = self._server.server_port
            self._thread = threading.Thread(target=self._server.serve_forever, name="werkzeug", daemon=True)
        else:
            raise ValueError(kind)
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.kind == "waitress":
            stop_waitress(self._server)
        else:
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(10)


def stop_waitress(server: Any) -> None:
    """Make a waitress server's ``run()`` return (from another thread): its tasks end, its sockets close."""
    server.task_dispatcher.shutdown(timeout=5)
    sockets = server._map

    def close_all() -> None:  # runs on the loop's thread; with its map empty, waitress's loop returns
        for dispatcher in list(sockets.values()):
            dispatcher.close()

    server.trigger.pull_trigger(close_all)


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_in(html: str) -> str:
    """The CSRF token a dashboard page carries in its forms."""
    found = CSRF_FIELD.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def sign_in(base_url: str, email: str, password: str, query: str = "") -> tuple[requests.Session, requests.Response]:
    """Sign in to the dashboard like a browser (login page, then its form); the session and the login answer.

    The session sends the post-login CSRF token (login issues a new one) as ``X-CSRF-Token`` from then on.
    """
    http = requests.Session()
    token = csrf_token_in(http.get(f"{base_url}/dashboard/login{query}", timeout=30).text)
    answer = http.post(
        f"{base_url}/dashboard/login{query}",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:300]
    http.headers["X-CSRF-Token"] = csrf_token_in(http.get(f"{base_url}/dashboard/login", timeout=30).text)
    return http, answer
