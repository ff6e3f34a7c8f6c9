"""Cliniko reference records cached per practice (businesses, practitioners, items, products, taxes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, utcnow

CATALOGUE_KINDS = ("business", "practitioner", "billable_item", "product", "tax", "appointment_type")


class ClinikoRecord(Base):
    """One cached Cliniko record: what the mapping screens list and the mapper reads."""

    __tablename__ = "cliniko_catalogue"
    __table_args__ = (UniqueConstraint("practice_id", "kind", "cliniko_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    cliniko_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    archived: Mapped[bool] = mapped_column(default=False)
    data: Mapped[dict] = mapped_column(JSONB, default=dict)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)
