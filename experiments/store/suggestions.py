"""Autocomplete's past searches, written only by the server: who searched what and was shown results.

Why not the impression log: impressions are reported by clients (``POST /api/events`` is public and
unauthenticated), so a phrase in an impression is whatever some client chose to send. One such request used to
make an offensive phrase the top suggestion for its prefix. Here a row is written by the web app itself when *its*
search page answered a query with at least one product (:class:`AnsweredSearch`), keyed by the shopper (a hash
of the visitor cookie), so a shopper searching a phrase a thousand times counts once. A phrase is suggested only
when ``min_shoppers`` distinct shoppers searched it, and never when it matches the merchandisers' block list
(:class:`SuggestionBlock`), which also holds the suggestions they removed.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shoprank.db import Base, utcnow

#: Longest phrase kept as a suggestion (longer searches are not what autocomplete offers).
MAX_PHRASE_CHARS = 100


class AnsweredSearch(Base):
    """One shopper searched one phrase (in one UI language) on the shop and was shown results: stored once."""

    __tablename__ = "answered_searches"

    phrase_key: Mapped[str] = mapped_column(String(400), primary_key=True)  # phrase_key(query)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)  # the page's language, '' when unknown
    shopper: Mapped[str] = mapped_column(String(64), primary_key=True)  # shopper_key(visitor id)
    phrase: Mapped[str] = mapped_column(Text)  # as this shopper typed it (trimmed), for display
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SuggestionBlock(Base):
    """A phrase merchandisers never want suggested: an exact suggestion they removed, or a word or phrase that
    blocks every suggestion containing it."""

    __tablename__ = "suggestion_blocks"

    phrase_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    phrase: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(254))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True, slots=True)
class Answered:
    """What the web app records after its search page showed results (see :func:`record_answered`)."""

    query: str
    language: str | None
    visitor: str


@dataclass(frozen=True, slots=True)
class PastSearch:
    phrase: str
    phrase_key: str
    language: str | None
    shoppers: int


def phrase_key(text: str) -> str:
    """How phrases are compared: NFKC, case-folded, whitespace collapsed (the same phrase typed twice is one)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def shopper_key(visitor: str) -> str:
    """The visitor id, hashed: the table counts shoppers without holding their cookie."""
    return hashlib.sha256(visitor.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def suggestible(query: str) -> bool:
    key = phrase_key(query)
    return bool(key) and len(key) <= MAX_PHRASE_CHARS


def record_answered(session: Session, searches: Iterable[Answered]) -> int:
    """Store each (phrase, language, shopper) once (insert-ignore); returns how many rows were new."""
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    now = utcnow()
    for search in searches:
        if not suggestible(search.query) or not search.visitor:
            continue
        key = (phrase_key(search.query), (search.language or "")[:16], shopper_key(search.visitor))
        rows.setdefault(
            key,
            {
                "phrase_key": key[0],
                "language": key[1],
                "shopper": key[2],
                "phrase": " ".join(search.query.split()),
                "first_at": now,
            },
        )
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(AnsweredSearch).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(AnsweredSearch).on_conflict_do_nothing()
    result = session.execute(statement, list(rows.values()))
    return max(0, int(getattr(result, "rowcount", 0) or 0))


def past_searches(session: Session, *, min_shoppers: int, limit: int = 500) -> list[PastSearch]:
    """Phrases searched by at least ``min_shoppers`` distinct shoppers (per language), most shoppers first.

    ``min_shoppers`` of 0 (off) returns nothing. Blocked phrases are *not* removed here: matching a block needs
    the search tokenizer's folding, which the caller has (``search.suggest.blocked``).
    """
    if min_shoppers <= 0:
        return []
    shoppers = func.count(AnsweredSearch.shopper)
    statement = (
        select(AnsweredSearch.phrase_key, AnsweredSearch.language, func.min(AnsweredSearch.phrase), shoppers)
        .group_by(AnsweredSearch.phrase_key, AnsweredSearch.language)
        .having(shoppers >= min_shoppers)
        .order_by(shoppers.desc(), AnsweredSearch.phrase_key)
        .limit(limit)
    )
    return [
        PastSearch(phrase, key, language or None, int(count))
        for key, language, phrase, count in session.execute(statement)
    ]


def blocked_phrases(session: Session) -> list[SuggestionBlock]:
    return list(session.scalars(select(SuggestionBlock).order_by(SuggestionBlock.phrase_key)))


def block_phrase(session: Session, phrase: str, actor: str) -> SuggestionBlock:
    """Add ``phrase`` to the block list (idempotent). Raises ``ValueError`` naming the problem when it is empty
    or too long."""
    key = phrase_key(phrase)
    if not key:
        raise ValueError("must not be empty")
    if len(key) > MAX_PHRASE_CHARS:
        raise ValueError(f"longer than {MAX_PHRASE_CHARS} characters")
    existing = session.get(SuggestionBlock, key)
    if existing is not None:
        return existing
    block = SuggestionBlock(phrase_key=key, phrase=" ".join(phrase.split()), added_by=actor[:254], added_at=utcnow())
    session.add(block)
    return block


def unblock_phrase(session: Session, key: str) -> bool:
    """Remove one block-list entry; False when there was none."""
    result = session.execute(delete(SuggestionBlock).where(SuggestionBlock.phrase_key == key))
    return bool(getattr(result, "rowcount", 0))
