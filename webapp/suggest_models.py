"""``GET /api/suggest`` contract: the query parameters and the answer as pydantic models.

Query parameters arrive as strings; each validator gives the 400 this endpoint always gave (code and message,
``shoprank.contracts``), and the first problem is the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shoprank.contracts import problem, problems
from shoprank.languages import is_known_language
from webapp.errors import ApiError

MAX_TYPED_CHARS = 100
DEFAULT_SUGGESTIONS = 8
MAX_SUGGESTIONS = 20


def _typed(value: Any) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_TYPED_CHARS:
        raise problem("invalid_q", f"q must be at most {MAX_TYPED_CHARS} characters for suggestions")
    return text


def _language(value: Any) -> str | None:
    """As ``webapp.blueprints.api.parse_language`` for a query parameter; empty means none."""
    if value is None or value == "":
        return None
    raw = str(value)
    if not is_known_language(raw):
        raise problem("unknown_language", f"lang={raw[:20]!r} is not an ISO 639-1 language code (e.g. en, zh, ar)")
    return raw


def _limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_SUGGESTIONS
    raw = str(value)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SUGGESTIONS:
        raise problem("invalid_limit", f"limit must be between 1 and {MAX_SUGGESTIONS}, got {raw[:20]!r}")
    return int(raw)


class SuggestQuery(BaseModel):
    """``?q=…&lang=…&limit=…``: what was typed so far, the shopper's language, how many suggestions."""

    model_config = ConfigDict(extra="ignore")

    q: Annotated[str, BeforeValidator(_typed), Field(default="", max_length=MAX_TYPED_CHARS, validate_default=True)]
    lang: Annotated[str | None, BeforeValidator(_language), Field(default=None, description="ISO 639-1 code")]
    limit: Annotated[
        Annotated[int, Field(ge=1, le=MAX_SUGGESTIONS)],
        BeforeValidator(_limit),
        Field(default=DEFAULT_SUGGESTIONS, validate_default=True),
    ]

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> SuggestQuery:
        """The first problem as the API's 400."""
        try:
            return cls.model_validate({name: args.get(name) for name in cls.model_fields})
        except ValidationError as exc:
            first = problems(exc)[0]
            raise ApiError(400, first.code, first.message) from None


class SuggestionOut(BaseModel):
    kind: Literal["search", "category", "brand", "product"]
    text: str
    value: str
    language: str | None
    url: str = Field(description="Where choosing the suggestion leads (a search, a listing or the product page)")


class SuggestResponse(BaseModel):
    """Past searches, categories, brands and product titles; the shopper's language first."""

    query: str
    suggestions: list[SuggestionOut]
