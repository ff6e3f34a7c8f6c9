"""Xero contacts created or adopted for Cliniko patients."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, TimestampMixin


class Contact(TimestampMixin, Base):
    """The Xero contact that stands for one Cliniko patient of a practice in one Xero organisation."""

    __tablename__ = "contacts"
    __table_args__ = (Index("uq_contacts_patient", "practice_id", "connection_id", "cliniko_patient_id", unique=True,
                            postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    #: The Xero organisation holding the contact (a patient seen at businesses routed to two
    #: organisations has a contact in each).
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
    cliniko_patient_id: Mapped[str] = mapped_column(String(32))
    xero_contact_id: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_number: Mapped[str | None] = mapped_column(String(64))
    name_used: Mapped[str | None] = mapped_column(String(255))
    details_hash: Mapped[str | None] = mapped_column(String(64))
