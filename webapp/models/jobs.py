"""The job table (`sync_jobs`) and its attempt history (`sync_attempts`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.models.base import Base, TimestampMixin, utcnow

JOB_KINDS = ("contact", "invoice", "payment", "void", "payment_delete", "appointment")
#: Kinds that are a Xero invoice (an `appointment` row is an invoice built from a Cliniko appointment).
INVOICE_KINDS = ("invoice", "appointment")
JOB_STATUSES = ("pending", "running", "synced", "failed", "retrying", "waiting", "skipped", "ignored")
ERROR_CATEGORIES = ("transient", "validation", "mapping", "totals", "conflict", "auth")


class SyncJob(TimestampMixin, Base):
    """One thing to put into Xero (a contact, invoice, payment, void or payment removal).

    `status` changes only through webapp.sync.states.
    """

    __tablename__ = "sync_jobs"
    __table_args__ = (
        # One row per practice × kind × Cliniko id, except contacts: one per patient per organisation.
        # (changes._ensure_rows names these two indexes in its ON CONFLICT clauses.)
        Index("uq_sync_jobs_row", "practice_id", "kind", "cliniko_id", unique=True,
              postgresql_where=text("kind <> 'contact'")),
        Index("uq_sync_jobs_contact", "practice_id", "cliniko_id", "connection_id", unique=True,
              postgresql_where=text("kind = 'contact'"), postgresql_nulls_not_distinct=True),
        CheckConstraint("status IN ('" + "','".join(JOB_STATUSES) + "')", name="status"),
        CheckConstraint("kind IN ('" + "','".join(JOB_KINDS) + "')", name="kind"),
        # Claiming due work per practice, oldest first.
        Index("ix_sync_jobs_due", "practice_id", "status", "next_attempt_at"),
        # The job list: newest first within a state, keyset by (updated_at, id).
        Index("ix_sync_jobs_list", "status", text("updated_at DESC"), text("id DESC")),
        Index("ix_sync_jobs_practice_list", "practice_id", "status", text("updated_at DESC"), text("id DESC")),
        # Category filters with or without a state, newest first (only failed rows have a category).
        Index("ix_sync_jobs_category", "error_category", "status", text("updated_at DESC"), text("id DESC"),
              postgresql_where=text("error_category IS NOT NULL")),
        # Charts: rows synced per practice over time.
        Index("ix_sync_jobs_synced", "practice_id", "synced_at", postgresql_where=text("status = 'synced'")),
        # Issue-date filters.
        Index("ix_sync_jobs_issued", "status", "issue_date",
              postgresql_include=["practice_id", "kind", "updated_at", "id"]),
        Index("ix_sync_jobs_invoice_number", "invoice_number"),
        Index("ix_sync_jobs_patient_name_lower", func.lower(text("patient_name"))),
        Index("ix_sync_jobs_xero_id", "xero_id"),
        Index("ix_sync_jobs_cliniko_id", "cliniko_id"),
        Index("ix_sync_jobs_heartbeat", "status", "heartbeat_at"),
        Index("ix_sync_jobs_parent", "practice_id", "kind", "parent_cliniko_id"),
        Index("ix_sync_jobs_backfill", "backfill_id", "status"),
        # Claiming due work per organisation; the job list's organisation filter.
        Index("ix_sync_jobs_connection_due", "connection_id", "kind", "status", "next_attempt_at"),
        # Rows not routed to an organisation yet (webapp.sync.routing.assign): few, and found at once.
        Index("ix_sync_jobs_unrouted", "practice_id", postgresql_where=text("connection_id IS NULL")),
        # The push's claim (webapp.sync.push.Pusher.claim) reads due rows in its order, with no sort.
        Index("ix_sync_jobs_claim", "connection_id", "kind", "priority", "next_attempt_at", "id",
              postgresql_where=text("status IN ('pending', 'retrying')")),
        # Appointment mode: is this appointment's Cliniko invoice already a row (webapp.sync.appointments)?
        Index("ix_sync_jobs_invoice_appointment", "practice_id", text("((source -> 'invoice') ->> 'appointment_id')"),
              postgresql_where=text("kind = 'invoice'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    #: The Xero organisation this row goes to (None: not routed yet; see webapp.sync.routing).
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("xero_connections.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    cliniko_id: Mapped[str] = mapped_column(String(32))
    invoice_number: Mapped[str | None] = mapped_column(String(255))
    patient_name: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Why a row is skipped, ignored or waiting (people read this).
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=12)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # Live work goes before backfill work (lower first).
    priority: Mapped[int] = mapped_column(Integer, default=0)
    backfill_id: Mapped[int | None] = mapped_column(ForeignKey("backfills.id", ondelete="SET NULL"))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    suggested_fix: Mapped[str | None] = mapped_column(Text)
    error_category: Mapped[str | None] = mapped_column(String(16))
    # HTTP status, Xero ValidationErrors, Xero request id, raw response excerpt.
    error_detail: Mapped[dict | None] = mapped_column(JSONB)
    xero_id: Mapped[str | None] = mapped_column(String(64))
    # Hash of the payload Xero would get now, and of the one it last accepted (change detection).
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    sent_hash: Mapped[str | None] = mapped_column(String(64))
    # What discovery read from Cliniko for this row (invoice + items + patient, or the patient).
    source: Mapped[dict | None] = mapped_column(JSONB)
    # The Cliniko id this row depends on: the patient of an invoice; the invoice of a payment or void.
    parent_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    # The last attempt ended without a clear answer: look in Xero by natural key before sending again.
    reconcile: Mapped[bool] = mapped_column(default=False, server_default=false())
    source_updated_at: Mapped[datetime | None]
    issue_date: Mapped[datetime | None]
    rq_job_id: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]

    practice = relationship("Practice")
    connection = relationship("XeroConnection")
    attempt_history = relationship(
        "SyncAttempt", back_populates="job", order_by="SyncAttempt.started_at", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<SyncJob {self.id} {self.kind} {self.cliniko_id} {self.status}>"


class SyncAttempt(Base):
    """One attempt at one job: when, what was sent, what Xero said."""

    __tablename__ = "sync_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"), index=True)
    # Copied from the job so per-practice charts need no join to sync_jobs.
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None]
    # The element of the request body for this job; purged after the retention period.
    request_body: Mapped[dict | None] = mapped_column(JSONB)
    response_body: Mapped[dict | None] = mapped_column(JSONB)
    xero_request_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))

    job = relationship("SyncJob", back_populates="attempt_history")


Index("ix_sync_attempts_started_at", SyncAttempt.started_at)
# The dashboard's "failed per hour/day" chart.
Index("ix_sync_attempts_failed", SyncAttempt.practice_id, SyncAttempt.started_at,
      postgresql_where=text("outcome IN ('error', 'ambiguous')"))
