"""The dashboard's one blueprint, in its own module so the view modules can register routes on it without
importing the package that imports them."""

from __future__ import annotations

from flask import Blueprint, g

from shoprank.db import set_statement_timeout
from webapp.context import app_services

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.before_request
def limit_statements() -> None:
    """Every dashboard query runs under ``SHOPRANK_DASHBOARD_STATEMENT_TIMEOUT_MS`` (PostgreSQL cancels it then),
    registered first so even the login check's queries have it; undone when the request ends."""
    g.undo_statement_timeout = set_statement_timeout(app_services().settings.dashboard_statement_timeout_ms)


@bp.teardown_request
def unlimit_statements(_: BaseException | None) -> None:
    undo = g.pop("undo_statement_timeout", None)
    if undo is not None:
        try:
            undo()
        except ValueError:  # reset from another context (never expected): clear it instead
            set_statement_timeout(None)
