"""The one rule for text that reaches storage: which characters the database or the product refuse.

PostgreSQL refuses NUL in ``text``/``varchar`` (the driver raises, the request became a 500 and, for the
exposure log, a silently lost row); the other C0 control characters and DEL are stored but are never part of an
id, a name or a query a person typed, and they break logs, CSV exports and terminals. Unpaired UTF-16
surrogates (JSON may escape them) are not text at all and no UTF-8 database stores them. Tab, newline and
carriage return stay allowed: a hypothesis may have line breaks.

Every boundary that hands client text to storage checks it here once (the events API, dashboard forms and URL
path parameters, the ``user`` of ``/api/search``), so the rule cannot drift between endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def unstorable_character(value: str) -> str | None:
    """``"U+0000"`` for the first character of ``value`` that cannot be stored, else None."""
    found = _UNSTORABLE.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def unstorable_problem(value: str) -> str | None:
    """A message for ``field: message`` reports, or None when ``value`` may be stored."""
    character = unstorable_character(value)
    if character is None:
        return None
    return f"contains the control character {character}, which cannot be stored"


def first_unstorable_field(fields: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The first ``(name, message)`` among ``(name, value)`` pairs whose value cannot be stored."""
    for name, value in fields:
        problem = unstorable_problem(value)
        if problem is not None:
            return name, problem
    return None
