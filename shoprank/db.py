"""Database glue: the declarative base every ORM model shares, engine and session factory from Settings.

Schema changes go through Alembic (``shoprank/migrations/``); nothing here creates tables.
SQLite (embedded default) and PostgreSQL (psycopg 3) run the same models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Deterministic constraint names, so Alembic migrations can refer to (and drop) them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: Seconds a new PostgreSQL connection may take before the request gives up (503, not a hung thread).
CONNECT_TIMEOUT_SECONDS = 5


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: SQLite's built-in lower() folds ASCII only ("ÖLFILTER" stays), PostgreSQL's folds Unicode: SQL that groups
#: text case-insensitively calls this name on SQLite (see ``experiments.store.search_analytics``).
SQLITE_UNICODE_LOWER = "shoprank_lower"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; WAL lets the web server read while an import writes. Registers
    a Unicode-aware lower() under its own name (the built-in stays as it is: expression indexes were built
    with it)."""
    dbapi_connection.create_function(SQLITE_UNICODE_LOWER, 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and sane pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre-ping: a connection the server dropped (restart, failover) is replaced instead of failing a request.
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # an unreachable server answers a request with 503 in seconds instead of hanging a web thread
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    return create_engine(parsed, **kwargs)


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now" rather than a bug in a query.

    Connection refused/reset, a server shutting down, a dropped connection (``connection_invalidated``), an
    exhausted pool: a client should retry later (503), while a bad statement stays a 500 that gets logged.
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError)


#: SQLSTATEs of a transaction PostgreSQL aborted to settle a conflict with another one (deadlock_detected,
#: serialization_failure): nothing of it was kept, and running it again is the documented remedy.
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transaction_conflict(exc: BaseException) -> bool:
    """True when ``exc`` is a deadlock or serialization failure: rerun the transaction, it is not an outage."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _CONFLICT_SQLSTATES


def run_retrying_conflicts(db: Database, work: Callable[[Session], T], attempts: int = 3) -> T:
    """``work`` in one transaction (``db.session()``), rerun when PostgreSQL aborted it as a deadlock victim.

    ``work`` must be safe to repeat (it is: a rolled-back transaction left nothing behind).
    """
    for attempt in range(1, attempts + 1):
        try:
            with db.session() as session:
                return work(session)
        except sa_exc.DBAPIError as exc:
            if attempt == attempts or not is_transaction_conflict(exc):
                raise
            sqlstate = getattr(exc.orig, "sqlstate", None)  # set: is_transaction_conflict just read it
            log.info("transaction conflict (%s), attempt %d of %d", sqlstate, attempt, attempts)
    raise AssertionError("unreachable")  # pragma: no cover


#: Milliseconds each statement may run in transactions begun while set (``statement_timeout``); None: no limit.
_STATEMENT_TIMEOUT_MS: ContextVar[int | None] = ContextVar("statement_timeout_ms", default=None)
#: SQLSTATE of a statement PostgreSQL cancelled at ``statement_timeout`` (query_canceled).
QUERY_CANCELED_SQLSTATE = "57014"


@contextmanager
def statement_timeout(milliseconds: int | None) -> Iterator[None]:
    """Every transaction a session of this context begins runs with ``SET LOCAL statement_timeout``.

    Why: a dashboard query whose plan went wrong (no planner statistics yet) otherwise runs for minutes after its
    client left, holding a web thread and a connection. ``SET LOCAL`` ends with the transaction, so a pooled
    connection never carries the limit into other work; the variable is reset when the context ends (the web
    app opens it per dashboard request). PostgreSQL only: SQLite runs in-process. ``None`` or 0: no limit.
    """
    token = _STATEMENT_TIMEOUT_MS.set(milliseconds or None)
    try:
        yield
    finally:
        _STATEMENT_TIMEOUT_MS.reset(token)


def set_statement_timeout(milliseconds: int | None) -> Callable[[], None]:
    """:func:`statement_timeout` for hooks that cannot wrap a ``with`` (Flask's before/teardown request):
    returns the function that undoes it."""
    token = _STATEMENT_TIMEOUT_MS.set(milliseconds or None)
    return lambda: _STATEMENT_TIMEOUT_MS.reset(token)


def is_statement_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == QUERY_CANCELED_SQLSTATE


def _apply_statement_timeout(session: Session, transaction: Any, connection: Any) -> None:
    milliseconds = _STATEMENT_TIMEOUT_MS.get()
    if milliseconds and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(milliseconds)}")


def analyze(db: Database, tables: tuple[str, ...]) -> None:
    """Refresh the planner's statistics of ``tables`` now (PostgreSQL ``ANALYZE``, SQLite's too).

    Why: after a bulk write the planner would otherwise guess from empty statistics until autovacuum runs
    (never, where it is off), and the analytics queries' plans go from milliseconds to minutes. A failure is
    logged, never raised: the data is written either way.
    """
    try:
        with db.engine.begin() as connection:
            for table in tables:
                connection.exec_driver_sql(f'ANALYZE "{table}"')
    except sa_exc.SQLAlchemyError:
        log.warning("ANALYZE %s failed; the planner keeps its old statistics", ", ".join(tables), exc_info=True)


class Database:
    """Engine + session factories for one database URL.

    ``session()`` is a unit of work (commit on success, rollback on error) for CLI
    and service code; ``scoped`` is the per-thread session the web app removes at
    the end of each request.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.scoped = scoped_session(self.sessionmaker)
        event.listen(self.sessionmaker, "after_begin", _apply_statement_timeout)

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        return cls(settings.resolved_database_url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.scoped.remove()
        self.engine.dispose()
