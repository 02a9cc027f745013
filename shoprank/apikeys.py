"""Bearer API keys for the rerank APIs, stored as SHA-256 hashes.

Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force
that a slow password hash (bcrypt, argon2) would protect. A leaked table reveals no
usable key; the plaintext is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shoprank.db import Base, utcnow

KEY_PREFIX = "srk_"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: First characters of the key, shown in listings so an operator can tell keys apart.
    display_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key; returns the row and the plaintext (the only time it exists)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("an API key needs a name of 1 to 100 characters")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, display_prefix=plaintext[:10], key_hash=hash_key(plaintext))
    session.add(key)
    session.flush()
    return key, plaintext


def find_active_key(session: Session, plaintext: str) -> ApiKey | None:
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
        return None
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None)))


def revoke_api_key(session: Session, key_id: int) -> bool:
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    return True
