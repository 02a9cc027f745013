"""waitress as ``shoprank serve`` runs it, with the server's own errors in the API's JSON shape on API paths.

waitress answers some requests before the app sees them: a request line it cannot parse (raw UTF-8 in the URL
gives ``400 Bad URI``), headers that are too large (431), a body over its own cap (413). It writes those as
``text/plain``; a client of ``/api/*`` or the rerank APIs would then fail to parse the error it was promised.
:class:`JsonErrorChannel` swaps waitress's error task for one that writes ``{"error": {"code", "message"}}``
when the request target starts with one of the JSON prefixes (``webapp.errors.JSON_PREFIXES``), and keeps
waitress's text for pages. Everything the app itself answers is JSON already (``webapp.errors``).
"""

from __future__ import annotations

import json
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.utilities import Error

from webapp.errors import JSON_PREFIXES

_JSON_PREFIXES = tuple(prefix.encode() for prefix in JSON_PREFIXES)


def _request_target(request: Any) -> bytes:
    """The raw target of the request line (what was sent, even when waitress could not parse it)."""
    path: str | None = getattr(request, "path", None)
    if path:
        return path.encode("latin-1", "replace")
    parts: list[bytes] = (getattr(request, "first_line", None) or b"").split(b" ")
    return parts[1] if len(parts) > 1 else b""


def server_error_code(status: int) -> str:
    return {400: "bad_request", 413: "payload_too_large", 431: "headers_too_large"}.get(status, "server_error")


class JsonErrorTask(ErrorTask):
    """waitress's error response, as JSON on API paths."""

    def execute(self) -> None:
        if not _request_target(self.request).startswith(_JSON_PREFIXES):
            super().execute()
            return
        # types-waitress types Task.request as the Error; it is the request parser, which holds it (as in waitress)
        error: Error = self.request.error  # type: ignore[attr-defined]  # see above: the stub's request is wrong
        message = f"{error.reason}: {error.body}" if error.body else error.reason
        if error.body == "Bad URI":
            message += " (percent-encode the URL: curl -G --data-urlencode 'q=...')"
        body = json.dumps({"error": {"code": server_error_code(error.code), "message": message}}).encode()
        self.status = f"{error.code} {error.reason}"
        json_headers = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
        self.response_headers.extend(json_headers)  # type: ignore[attr-defined]  # a list; types-waitress: Sequence
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def create_waitress_server(app: Any, *, host: str, port: int, threads: int) -> Any:
    """A waitress server (not yet running: call ``.run()``) whose own errors are JSON on API paths."""
    sockets: dict[int, Any] = {}  # every listening socket registers its server here (one per address)
    server = create_server(app, map=sockets, host=host, port=port, threads=threads, ident="shoprank")
    for listener in sockets.values():
        listener.channel_class = JsonErrorChannel
    return server
