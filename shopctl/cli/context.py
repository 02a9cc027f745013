"""What every database command starts with: the environment's settings and a schema-checked ``Database``.

One place, so that every command refuses an outdated schema with the same message (instead of failing later on a
missing column) and always disposes its connection pool, also when the command fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from shoprank import migrate
from shoprank.config import ConfigError, Settings
from shoprank.db import Database


def settings() -> Settings:
    """The ``SHOPRANK_*`` settings; an invalid value is a one-line command error, not a traceback."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def check_schema(url: str) -> None:
    """Refuse to work on a database whose schema is not the code's (``shoprank db upgrade`` fixes it)."""
    if not migrate.is_up_to_date(url):
        raise click.ClickException(
            f"database schema is at {migrate.current_revision(url) or 'nothing'}, code expects "
            f"{migrate.head_revision()}; run `shoprank db upgrade` first"
        )


@contextmanager
def database(settings: Settings, *, require_schema: bool = True) -> Iterator[Database]:
    """The settings' database, schema checked first (unless ``require_schema`` is false), disposed on exit."""
    if require_schema:
        check_schema(settings.resolved_database_url)
    db = Database.from_settings(settings)
    try:
        yield db
    finally:
        db.dispose()
