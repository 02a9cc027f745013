"""The app behind a real HTTP server in this process: waitress as ``shoprank serve`` builds it, or werkzeug's
threaded server (which, like gunicorn, streams a chunked body to the app instead of buffering it)."""

from __future__ import annotations

import threading
from typing import Any

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
            self._server.task_dispatcher.shutdown(timeout=5)
            sockets = self._server._map

            def close_all() -> None:  # runs on the loop's thread; with its map empty, waitress's loop returns
                for dispatcher in list(sockets.values()):
                    dispatcher.close()

            self._server.trigger.pull_trigger(close_all)
        else:
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(10)
