"""Creating and authenticating users."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from webapp.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from webapp.extensions import db
from webapp.models import ROLES, Practice, User, utcnow

logger = logging.getLogger(__name__)


class UserError(ValueError):
    """Bad input for a user (duplicate email, weak password, unknown practice or role)."""


def find_by_email(email: str) -> User | None:
    """The user with this email, ignoring case."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(email: str, password: str, role: str = "support", practice_slug: str | None = None) -> User:
    """Add a user; raises UserError with a plain message on bad input. Caller commits."""
    email = email.strip()
    if "@" not in email or len(email) > 254:
        raise UserError(f"{email!r} is not an email address.")
    if role not in ROLES:
        raise UserError(f"Role must be one of {', '.join(ROLES)}.")
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    if find_by_email(email):
        raise UserError(f"A user with email {email} already exists.")
    practice_id = None
    if practice_slug:
        practice = db.session.scalar(select(Practice).where(Practice.slug == practice_slug))
        if practice is None:
            raise UserError(f"No practice with slug {practice_slug!r}.")
        practice_id = practice.id
    user = User(email=email, password_hash=hash_password(password), role=role, practice_id=practice_id)
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user whose password matches, after bookkeeping; None otherwise. Caller commits."""
    user = find_by_email(email)
    if user is None:
        # Spend the same time as a real check so response time does not reveal which emails exist.
        verify_password(hash_password("not-a-user-password"), password)
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        user.failed_login_count += 1
        return None
    if needs_rehash(user.password_hash):
        logger.info("rehashing password of user %s with current parameters", user.id)
        user.password_hash = hash_password(password)
    user.failed_login_count = 0
    user.last_login_at = utcnow()
    return user
