"""Dashboard users: email, salted password hash, role. Framework-free; the web login lives in ``webapp.dashboard``.

Passwords are hashed with werkzeug's ``generate_password_hash`` (scrypt, random salt): slow on purpose, unlike
the SHA-256 of API keys, because people choose guessable passwords. Roles are ordered: an admin may do what a
merchandiser may do; ops see the ops page (`/dashboard/ops`) but not the experiment pages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Boolean, CheckConstraint, DateTime, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from shoprank.db import Base, utcnow

ROLES = ("merchandiser", "ops", "admin")
MIN_PASSWORD_LENGTH = 10
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")
#: A hash of a random password, checked when the email is unknown so that a miss costs as long as a hit.
_DUMMY_HASH = generate_password_hash("no-such-user-placeholder-password")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES)})", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Wrong passwords since the last successful login or lockout (shared by every web process via the row).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Copied into each dashboard session at login; a session carrying an older value is signed out. Bumped by
    #: logout, a password or role change and deactivation, so a copied cookie dies with them (server-side).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and _aware(self.locked_until) > (now or utcnow())

    def has_role(self, *roles: str) -> bool:
        """Admins pass every role check; others need one of ``roles``."""
        return self.role == "admin" or self.role in roles


class UserError(ValueError):
    """Invalid user input; the message is safe to show."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("the password is longer than 1024 characters")


def create_user(session: Session, email: str, password: str, role: str) -> User:
    email = normalize_email(email)
    if not _EMAIL.match(email):
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    validate_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserError(f"a user with email {email} already exists")
    user = User(email=email, password_hash=generate_password_hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise UserError(f"no user with email {email}")
    validate_password(password)
    user.password_hash = generate_password_hash(password)
    revoke_sessions(user)
    return user


def revoke_sessions(user: User) -> None:
    """End every dashboard session of ``user`` (each carries the epoch it started in); the caller commits."""
    user.session_epoch = (user.session_epoch or 0) + 1


def set_role(session: Session, user_id: int, role: str) -> User:
    """Change a user's role; their sessions end, so the new role applies from their next sign-in."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    user = get_user(session, user_id)
    if user.role != role:
        user.role = role
        revoke_sessions(user)
    return user


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC, PostgreSQL aware datetimes."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    max_failures: int = 0,
    lockout: timedelta = timedelta(minutes=15),
) -> User | None:
    """The active, unlocked user with this email and password, else None (same work either way).

    With ``max_failures`` > 0, that many wrong passwords in a row lock the account for ``lockout``: while
    locked even the right password is refused (the caller cannot tell a lock from a wrong password, and neither
    can an attacker). The counter is incremented in SQL, so concurrent guesses from several processes all count.
    The caller commits.
    """
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    now = utcnow()
    if user is None or not user.active or user.locked(now):
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        if max_failures > 0:
            _record_failure(session, user, max_failures, now + lockout)
        return None
    user.last_login_at = now
    user.failed_logins = 0
    user.locked_until = None
    return user


def _record_failure(session: Session, user: User, max_failures: int, lock_until: datetime) -> None:
    session.execute(
        update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1),
        execution_options={"synchronize_session": False},
    )
    session.refresh(user, ["failed_logins"])
    if user.failed_logins >= max_failures:
        user.locked_until = lock_until
        user.failed_logins = 0


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserError(f"no user #{user_id}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def set_active(session: Session, user_id: int, active: bool) -> User:
    """Deactivate (every session ends at once, cannot sign in) or reactivate a user."""
    user = get_user(session, user_id)
    if user.active != active:
        user.active = active
        revoke_sessions(user)
    return user


def unlock_user(session: Session, user_id: int) -> User:
    """Lift a lockout before it expires (an admin has checked it was the real user)."""
    user = get_user(session, user_id)
    user.locked_until = None
    user.failed_logins = 0
    return user
