"""The simulator must get through rate limits: in process it is the operator's own load generator (the demo
seeds ~1000 shoppers through it), over HTTP it waits out 429s as a polite client does."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shopctl.simulator import MAX_RATE_LIMIT_WAITS, FlaskTransport, HttpTransport, SimulationConfig, Simulator


def test_in_process_simulation_is_not_stopped_by_the_public_rate_limit(shop_services):
    from webapp import create_app

    app = create_app(shop_services.settings.replace(public_rate_limit_per_minute=3), services=shop_services)
    client = app.test_client()
    statuses = [client.get("/api/search?q=headphones&limit=3").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # the app itself does limit this address

    config = SimulationConfig(users=6, days=1, seed=5, results_per_page=3)
    result = Simulator(FlaskTransport(app), config).run()
    assert result.users == 6 and result.searches >= 6 and result.events > result.searches


class _Throttling(BaseHTTPRequestHandler):
    """Answers 429 (Retry-After: 0) to the first ``throttle`` requests, then 200 with a JSON body."""

    throttle = 0
    seen = 0

    def _answer(self) -> None:
        type(self).seen += 1
        if type(self).seen <= type(self).throttle:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            body = b'{"error": {"code": "rate_limited"}}'
        else:
            self.send_response(200)
            body = json.dumps({"ok": True, "path": self.path}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def throttling_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_transport_waits_out_429_then_succeeds(throttling_server):
    _, base = throttling_server
    _Throttling.throttle, _Throttling.seen = 2, 0
    transport = HttpTransport(base)
    assert transport.get_json("/api/search", {"q": "tent"})["ok"] is True
    assert _Throttling.seen == 3
    _Throttling.throttle, _Throttling.seen = 1, 0
    assert transport.post_json("/api/events", {"events": []})["path"] == "/api/events"


def test_http_transport_gives_up_on_a_server_that_keeps_refusing(throttling_server):
    _, base = throttling_server
    _Throttling.throttle, _Throttling.seen = 10_000, 0
    with pytest.raises(RuntimeError, match="429"):
        HttpTransport(base).get_json("/api/search", {"q": "tent"})
    assert _Throttling.seen == MAX_RATE_LIMIT_WAITS
