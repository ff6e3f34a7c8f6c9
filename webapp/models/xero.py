"""A practice's Xero connection and the reference data read from that organisation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, TimestampMixin

CONNECTION_STATUSES = ("active", "needs_reconnect", "revoked")


class XeroConnection(TimestampMixin, Base):
    """OAuth tokens (encrypted) and status for one Xero organisation of a practice."""

    __tablename__ = "xero_connections"
    __table_args__ = (UniqueConstraint("practice_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    tenant_name: Mapped[str | None] = mapped_column(String(255))
    connection_id: Mapped[str | None] = mapped_column(String(64))
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None]
    scopes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")
    last_refreshed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: This organisation's own default accounts (sales_account, payment_account, rounding_account,
    #: tax_exempt); a key not set here falls back to the practice's settings.
    settings: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))

    practice = relationship("Practice", back_populates="xero_connections")


class XeroAccount(Base):
    """An account in the organisation's chart of accounts (picker data)."""

    __tablename__ = "xero_accounts"
    __table_args__ = (UniqueConstraint("connection_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    tax_type: Mapped[str | None] = mapped_column(String(64))
    enable_payments_to_account: Mapped[bool] = mapped_column(default=False)
    system_account: Mapped[str | None] = mapped_column(String(64))
    refreshed_at: Mapped[datetime | None]


class XeroTaxRate(Base):
    """A tax rate of the organisation (picker data)."""

    __tablename__ = "xero_tax_rates"
    __table_args__ = (UniqueConstraint("connection_id", "tax_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
    tax_type: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    effective_rate: Mapped[Decimal | None] = mapped_column(Numeric(9, 4))
    can_apply_to_revenue: Mapped[bool] = mapped_column(default=True)
    refreshed_at: Mapped[datetime | None]


class XeroTrackingOption(Base):
    """One option of a tracking category (picker data)."""

    __tablename__ = "xero_tracking_options"
    __table_args__ = (UniqueConstraint("connection_id", "option_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connections.id", ondelete="CASCADE"))
    category_id: Mapped[str] = mapped_column(String(64))
    category_name: Mapped[str] = mapped_column(String(255))
    option_id: Mapped[str] = mapped_column(String(64))
    option_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    refreshed_at: Mapped[datetime | None]

    connection = relationship("XeroConnection")
