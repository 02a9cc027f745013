"""The one place where a pydantic validation error becomes what the API has always answered.

The JSON contracts are pydantic models (``webapp.rerank_models``…). Their validators raise :func:`problem` with
the API's own error code and message, and :func:`problems` turns pydantic's error list into those codes, messages
and the field paths clients already parse (``documents[3]``, ``events[0].query``), so moving a contract onto a
model changes no answer. Limits that a deployment configures are read from the validation context
(:func:`setting`) and stated in the generated OpenAPI document through :func:`limit` markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

#: JSON Schema keyword prefix of a limit the deployment configures: ``{"x-setting-maxItems": "events_max_batch"}``
#: becomes ``{"maxItems": settings.events_max_batch}`` in ``/openapi.json``.
SETTING_MARKER = "x-setting-"


@dataclass(frozen=True, slots=True)
class Problem:
    """One rejected field: ``path`` as clients read it, the API's error ``code`` and its ``message``."""

    path: str
    code: str
    message: str


def problem(code: str, message: str) -> PydanticCustomError:
    """An error a validator raises: ``code`` is the API's error code, ``message`` its text, verbatim."""
    return PydanticCustomError(code, "{message}", {"message": message})


def field_path(loc: Sequence[int | str]) -> str:
    """``("events", 3, "price")`` → ``events[3].price``: the notation of every message the API ever gave."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


#: pydantic's own error types, for input a validator never saw (a missing field, a body that is not an object).
_BUILTIN_MESSAGES = {
    "missing": "{path} is required",
    "model_type": "{path} must be an object",
    "model_attributes_type": "{path} must be an object",
    "dict_type": "{path} must be an object",
}


def problems(exc: ValidationError, *, default_code: str = "invalid_request") -> list[Problem]:
    """Every error of ``exc`` in the order pydantic found them (the models' field order is the checking order)."""
    found: list[Problem] = []
    for error in exc.errors(include_url=False):
        path = field_path(error["loc"]) or "body"
        if error["type"] in _BUILTIN_MESSAGES:
            found.append(Problem(path, default_code, _BUILTIN_MESSAGES[error["type"]].format(path=path)))
        elif "message" in (error.get("ctx") or {}):
            found.append(Problem(path, error["type"], str(error["ctx"]["message"])))
        else:  # a constraint no validator checked first: still a clear 4xx naming the field
            found.append(Problem(path, default_code, f"{path}: {error['msg']}"))
    return found


def setting(info: ValidationInfo, name: str) -> Any:
    """A configured limit for this validation: ``model_validate(body, context={"settings": settings})``."""
    context = info.context or {}
    return getattr(context["settings"], name)


def limit(keyword: str, setting_name: str) -> dict[str, str]:
    """``json_schema_extra`` saying that ``keyword`` (``maxItems``…) is the deployment's ``setting_name``."""
    return {SETTING_MARKER + keyword: setting_name}


def resolve_limits(node: Any, settings: Any) -> Any:
    """Replace every :func:`limit` marker under ``node`` with the value this deployment runs with."""
    if isinstance(node, list):
        return [resolve_limits(item, settings) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(key, str) and key.startswith(SETTING_MARKER):
            out[key.removeprefix(SETTING_MARKER)] = getattr(settings, value)
        else:
            out[key] = resolve_limits(value, settings)
    return out
