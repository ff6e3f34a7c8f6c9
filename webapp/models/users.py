"""Users of the admin app: login, role and practice scope."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, TimestampMixin

ROLES = ("admin", "support")


class User(UserMixin, TimestampMixin, Base):
    """A person who logs in; `practice_id` None means every practice."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin','support')", name="role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="support")
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(default=True)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    last_login_at: Mapped[datetime | None]
    # A one-time password-set token (hashed) for invited users.
    invite_token_hash: Mapped[str | None] = mapped_column(String(128))
    invite_expires_at: Mapped[datetime | None]

    practice = relationship("Practice", lazy="joined")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see_practice(self, practice_id: int | None) -> bool:
        """True when the user's scope includes this practice."""
        return self.practice_id is None or self.practice_id == practice_id

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


# Email is unique regardless of case.
Index("uq_users_email_lower", func.lower(User.email), unique=True)
