"""Practices (one Cliniko account each) and their per-practice mappings."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, TimestampMixin

MAPPING_KINDS = ("billable_item", "product", "practitioner", "business", "tax")


class Practice(TimestampMixin, Base):
    """One Cliniko account and how it syncs to its Xero organisation."""

    __tablename__ = "practices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    cliniko_api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    cliniko_shard: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[str] = mapped_column(String(64), default="Australia/Sydney")
    sync_enabled: Mapped[bool] = mapped_column(default=False)
    sync_from: Mapped[date | None]
    # Last `updated_at` seen per Cliniko resource, ISO strings keyed by resource name.
    poll_cursors: Mapped[dict] = mapped_column(JSONB, default=dict)
    # Options of SPEC §7 (accounts, invoice options, contact options, filters, policies).
    settings: Mapped[dict] = mapped_column(JSONB, default=dict)
    last_poll_at: Mapped[datetime | None]
    last_successful_poll_at: Mapped[datetime | None]
    last_poll_error: Mapped[str | None] = mapped_column(Text)

    xero_connections = relationship(
        "XeroConnection", back_populates="practice", cascade="all, delete-orphan"
    )
    mappings = relationship("Mapping", back_populates="practice", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Practice {self.slug}>"


class Mapping(TimestampMixin, Base):
    """A Cliniko item (billable item, product, practitioner, business, tax) mapped to Xero choices."""

    __tablename__ = "mappings"
    __table_args__ = (Index("uq_mappings_row", "practice_id", "kind", "cliniko_id", "connection_id", unique=True,
                            postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    #: None: the practice-wide mapping; a Xero connection: that organisation's own choice, which wins
    #: over the practice-wide one for rows sent to it.
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    cliniko_id: Mapped[str] = mapped_column(String(32))
    cliniko_name: Mapped[str | None] = mapped_column(String(255))
    account_code: Mapped[str | None] = mapped_column(String(32))
    tax_type: Mapped[str | None] = mapped_column(String(64))
    tracking_option_id: Mapped[str | None] = mapped_column(String(64))
    payment_account_code: Mapped[str | None] = mapped_column(String(32))

    practice = relationship("Practice", back_populates="mappings")


class BusinessRoute(TimestampMixin, Base):
    """Which of the practice's Xero organisations a Cliniko business's invoices go to (SPEC §1's routing).

    A business without a route goes to the practice's default organisation (its first active connection)."""

    __tablename__ = "business_routes"
    __table_args__ = (UniqueConstraint("practice_id", "cliniko_business_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    cliniko_business_id: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
