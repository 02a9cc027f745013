"""One logging setup for every process (CLI, ``shoprank serve``, gunicorn, rerank workers).

``SHOPRANK_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``message``,
``request_id``, and ``exc`` with the traceback when there is one), which log shippers index without parsing
rules. ``request_id`` comes from a context variable: the web tier binds it per HTTP request (``X-Request-ID``)
and the Celery task binds the same id from the rerank job, so one search can be followed into its worker.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from shoprank.config import ConfigError, Settings
from shoprank.redaction import install_redaction

#: The request (or rerank job) this code runs for; ``None`` outside any.
request_id_var: ContextVar[str | None] = ContextVar("shoprank_request_id", default=None)
#: What a request id taken from outside (``X-Request-ID``, a rerank job) may look like: short and safe in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

#: Marks the handler ``configure_logging`` installed, so a second call replaces it instead of doubling lines.
_HANDLER_FLAG = "_shoprank_handler"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; non-ASCII text stays readable (``ensure_ascii=False``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or "-",
        }
        if record.exc_text:  # exc_text first: the redaction filter has already masked it
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def build_handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_FLAG, True)
    return handler


def configure_logging(settings: Settings, *, level: str | None = None, stream: IO[str] | None = None) -> None:
    """Route the root logger to one handler in ``settings.log_format``; ``level`` overrides ``settings.log_level``.

    The handler masks secrets (``shoprank.redaction``) before either format sees a record.

    Idempotent: calling it again (CLI group, then gunicorn's worker hook) replaces our handler and leaves
    handlers others installed (pytest's capture, for one) alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_FLAG, False):
            root.removeHandler(handler)
    root.addHandler(build_handler(settings.log_format, stream))
    root.setLevel((level or settings.log_level).upper())
    install_redaction(secrets=(settings.secret_key,))  # last, so the new handler masks secrets too


def settings_for_logging() -> Settings:
    """The environment's settings, or defaults when they are invalid (the command reports that error itself)."""
    try:
        return Settings.from_env()
    except ConfigError:
        import os

        fmt = os.environ.get("SHOPRANK_LOG_FORMAT", "text")
        return Settings.from_env({}, log_format=fmt if fmt in ("text", "json") else "text")


def valid_request_id(value: object) -> str | None:
    """``value`` when it is a well-formed request id, else None (the caller makes a fresh one or logs without)."""
    return value if isinstance(value, str) and _REQUEST_ID.match(value) else None


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Log lines inside the block carry ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)
