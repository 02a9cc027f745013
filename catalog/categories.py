"""Category display names and paths (``Home & Garden > Kitchen > Coffee Makers``) → URL slugs, and back.

Feeds name categories the way merchants see them; pages and filters need a stable
lowercase slug. The slug is the path's leaf (``coffee-makers``), so a category page URL
stays short and a merchant who reorganises the tree above a leaf keeps its URL. The
display name and the full path are kept in the ``categories`` table for pages.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Category

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PATH_SEPARATORS = re.compile(r"\s*(?:>|›|»|\|)\s*")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
MAX_NAME_CHARS = 200
MAX_PATH_CHARS = 1000


@dataclass(frozen=True, slots=True)
class CategoryRef:
    slug: str
    name: str | None  # display name of the leaf; None when the feed gave a bare slug
    path: str | None  # full display path when the feed gave one with more than one level


def slugify(name: str) -> str:
    """``Sports & Fitness`` → ``sports-fitness``; non-Latin names (``婴儿用品``) get ``c-`` + a short hash."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NON_SLUG.sub("-", folded.replace("&", " ")).strip("-")[:64].strip("-")
    if slug:
        return slug
    return "c-" + hashlib.sha256(name.strip().casefold().encode("utf-8")).hexdigest()[:10]


def parse_category(value: str) -> CategoryRef:
    """A slug stays a slug; a display name or a ``>`` path becomes (leaf slug, leaf name, path)."""
    value = " ".join(value.split())
    if SLUG.match(value):
        return CategoryRef(value, None, None)
    parts = [part for part in _PATH_SEPARATORS.split(value) if part]
    if not parts:
        raise ValueError("category: no name between the separators")
    leaf = parts[-1]
    if len(leaf) > MAX_NAME_CHARS or len(value) > MAX_PATH_CHARS:
        raise ValueError(f"category: longer than {MAX_NAME_CHARS} characters per level")
    path = " > ".join(parts) if len(parts) > 1 else None
    return CategoryRef(slugify(leaf), leaf, path)


def slug_words(slug: str) -> str:
    """``running-shoes`` → ``Running shoes``: the label of a category no feed named."""
    words = slug.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def category_name(session: Session, slug: str) -> str:
    """The display name for pages: the feed's name when one was imported, else the slug's words."""
    name = session.scalar(select(Category.name).where(Category.slug == slug))
    return name or slug_words(slug)


def category_names(session: Session) -> dict[str, str]:
    """Every named category, slug → display name (small: one row per category, not per product)."""
    return {slug: name for slug, name in session.execute(select(Category.slug, Category.name))}
