"""Flask front end: shop pages, JSON API, rerank APIs (Cohere/Jina/TEI shapes), health."""

from __future__ import annotations

from typing import Any, cast

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from shoprank.config import Settings
from webapp.context import EXTENSION, app_services
from webapp.services import AppServices, build_services


def create_app(settings: Settings | None = None, *, services: AppServices | None = None) -> Flask:
    """The app for ``settings`` (default: from the environment).

    ``services`` lets tests and the demo server share one catalog index and one
    dispatcher between apps instead of loading them again.
    """
    settings = settings or (services.settings if services else Settings.from_env())
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        TEMPLATES_AUTO_RELOAD=settings.env == "development",
    )
    json_provider = cast(DefaultJSONProvider, app.json)  # Flask's default, typed as the base class without these
    json_provider.ensure_ascii = False
    json_provider.sort_keys = False
    app.extensions[EXTENSION] = services or build_services(settings)

    from shoprank.redaction import install_redaction
    from webapp import dashboard, i18n
    from webapp.blueprints import api, health, metrics, rank, rerank_api, shop
    from webapp.errors import register_error_handlers
    from webapp.http import install_request_hooks
    from webapp.security import install_security

    install_redaction(secrets=(settings.secret_key,))  # root handlers (CLI/gunicorn config) ...
    install_redaction(app.logger)  # ... and Flask's own default handler, when it has one
    install_request_hooks(app)
    metrics.install_http_metrics(app)
    install_security(app, settings)
    register_error_handlers(app)
    i18n.init_app(app)
    app.register_blueprint(shop.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(rank.bp)
    app.register_blueprint(rerank_api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    dashboard.init_app(app, production=settings.env == "production")

    @app.teardown_appcontext
    def remove_session(_exc: Any) -> None:
        app_services(app).db.scoped.remove()

    return app

