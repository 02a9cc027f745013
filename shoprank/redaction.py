"""Keep secrets out of logs: a logging filter that masks them in every record a handler writes.

What it masks, wherever it appears in a message, its arguments or an exception's traceback text:

- ``Authorization: Bearer <token>`` and any ``Bearer <token>``;
- shoprank API keys (``srk_...``), even without a ``Bearer`` in front;
- ``password=...``, ``"password": "..."`` and the like (password, passwd, secret, token, api_key, secret_key);
- the password in URLs (``postgresql://user:PASSWORD@host/db``, ``redis://:PASSWORD@host``);
- exact values registered with :func:`install_redaction` (the ``SECRET_KEY``), which have no recognisable shape.

Why a handler filter: filters on a *logger* do not see records propagated from child loggers, filters on the
root logger's *handlers* see everything that is written. Call :func:`install_redaction` once after logging is
configured (the CLI and ``create_app`` do); it is idempotent and also reads ``SHOPRANK_SECRET_KEY``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

MASK = "[REDACTED]"
_MIN_SECRET_CHARS = 8  # shorter "secrets" would mask ordinary words

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s,;\"']+"), rf"\1{MASK}"),
    (re.compile(r"\bsrk_[A-Za-z0-9_-]{4,}"), f"srk_{MASK}"),
    (
        re.compile(
            r"(?i)(?<![a-z0-9])((?:password|passwd|pwd|secret|secret_key|token|api_key|apikey|csrf_token)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s,;&\"'}]+"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(@)"), rf"\1{MASK}\2"),
)
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED]``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactionFilter(logging.Filter):
    """Rewrites the record's message (and traceback text) before any formatter sees it; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging's own error report
            return True
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactionFilter()


def register_secret(value: str | None) -> None:
    """Mask this exact value from now on (ignored when too short to be a real secret)."""
    if value and len(value) >= _MIN_SECRET_CHARS:
        _secrets.add(value)


def install_redaction(logger: logging.Logger | None = None, *, secrets: Iterable[str | None] = ()) -> RedactionFilter:
    """Attach the redaction filter to every handler of ``logger`` (default: root); safe to call repeatedly.

    Call it again after adding handlers (``configure_logging`` does so last).
    """
    register_secret(os.environ.get("SHOPRANK_SECRET_KEY"))
    for value in secrets:
        register_secret(value)
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    return _FILTER
