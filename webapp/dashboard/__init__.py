"""Merchandiser dashboard: experiment list, create/edit/start/stop, experiment report pages, CSV export;
search analytics per query (``analytics_views``); and the ops page (``ops_views``: workers, queues, latency).

Login required (merchandiser or admin role; ops role for the ops page); every form carries a CSRF token
(``auth_users``).
"""

from __future__ import annotations

from flask import Flask

from webapp.dashboard import (  # noqa: F401  (routes on bp)
    admin,
    analytics_views,
    auth_users,
    ops_views,
    suggestion_views,
    views,
)
from webapp.dashboard.blueprint import bp


def init_app(app: Flask, *, production: bool) -> None:
    auth_users.init_app(app, production=production)
    app.register_blueprint(bp)
