"""Xero contacts created or adopted for Cliniko patients."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, TimestampMixin


class Contact(TimestampMixin, Base):
    """The Xero contact that stands for one Cliniko patient of a practice."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("practice_id", "cliniko_patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    cliniko_patient_id: Mapped[str] = mapped_column(String(32))
    xero_contact_id: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_number: Mapped[str | None] = mapped_column(String(64))
    name_used: Mapped[str | None] = mapped_column(String(255))
    details_hash: Mapped[str | None] = mapped_column(String(64))
