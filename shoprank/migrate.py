"""Alembic, driven from Settings: ``shoprank db upgrade`` / ``downgrade`` / ``current``.

No ``alembic.ini``: the database URL comes from the one Settings object, so the
CLI, the demo server and the tests can never migrate a different database than
the app uses.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

#: Inside the package, so an installed wheel (the container image) migrates as a checkout does.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from shoprank.db import make_engine

    make_engine(database_url).dispose()  # creates the SQLite file's directory
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_up_to_date(database_url: str) -> bool:
    return current_revision(database_url) == head_revision()
