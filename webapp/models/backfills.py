"""Backfills: "synchronise from a previous date" runs and their progress."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, TimestampMixin

BACKFILL_STATES = ("queued", "running", "done", "cancelled", "failed")


class Backfill(TimestampMixin, Base):
    """One backfill of a practice from a date, with progress counters."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    from_date: Mapped[date]
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    discovered: Mapped[int] = mapped_column(default=0)
    synced: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    practice = relationship("Practice")
    requested_by = relationship("User")
