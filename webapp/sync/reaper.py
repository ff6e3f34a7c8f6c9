"""The reaper: stale claims back to pending, and a push for every practice with due rows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import INVOICE_KINDS, Backfill, Practice, SyncAttempt, SyncJob, utcnow
from webapp.sync import states

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)


def reap_stale(stale_after: timedelta = STALE_AFTER) -> int:
    """Rows claimed by a worker that stopped beating → pending, flagged for a look-up in Xero first."""
    cutoff = utcnow() - stale_after
    rows = db.session.scalars(
        select(SyncJob).where(SyncJob.status == "running", SyncJob.heartbeat_at < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        db.session.add(SyncAttempt(job_id=row.id, practice_id=row.practice_id, outcome="interrupted",
                                   finished_at=utcnow(),
                                   error=f"worker {row.claimed_by} stopped before finishing"))
        states.release(row, "interrupted")
        row.reconcile = True
    db.session.commit()
    if rows:
        logger.warning("released %s interrupted rows", len(rows))
    return len(rows)


def release_stranded_waiting(limit: int = 1000) -> int:
    """Waiting rows whose dependency is in Xero now (two workers can cross: one makes a row wait while
    the other finishes what it waits for) become pending."""
    from sqlalchemy.orm import aliased

    dep = aliased(SyncJob)
    # An invoice or appointment invoice waits for its patient's contact in the same organisation (a patient
    # has a contact row per organisation; NULL = not routed yet matches only NULL).
    invoices = select(SyncJob).join(dep, (dep.practice_id == SyncJob.practice_id) & (dep.kind == "contact")
                                    & (dep.cliniko_id == SyncJob.parent_cliniko_id)
                                    & dep.connection_id.is_not_distinct_from(SyncJob.connection_id)).where(
        SyncJob.kind.in_(INVOICE_KINDS), SyncJob.status == "waiting", dep.status == "synced")
    # A payment waits for its invoice (same Cliniko id; it follows the invoice's organisation).
    payments = select(SyncJob).join(dep, (dep.practice_id == SyncJob.practice_id) & dep.kind.in_(INVOICE_KINDS)
                                    & (dep.cliniko_id == SyncJob.cliniko_id)).where(
        SyncJob.kind == "payment", SyncJob.status == "waiting", dep.status == "synced")
    count = 0
    for query in (invoices, payments):
        for row in db.session.scalars(query.limit(limit).with_for_update(of=SyncJob, skip_locked=True)):
            states.release_waiting(row)
            count += 1
    db.session.commit()
    if count:
        logger.info("released %s waiting rows whose dependency is in Xero", count)
    return count


def practices_with_due_rows() -> list[tuple[int, datetime]]:
    """(practice id, earliest due time) for enabled practices with rows to send (not those in dry run,
    which send nothing)."""
    dry = Practice.settings.contains({"dry_run": True})
    rows = db.session.execute(
        select(SyncJob.practice_id, func.min(SyncJob.next_attempt_at))
        .join(Practice, Practice.id == SyncJob.practice_id)
        .where(Practice.sync_enabled.is_(True), dry.is_(False), SyncJob.status.in_(("pending", "retrying")))
        .group_by(SyncJob.practice_id)
    ).all()
    return [(pid, due) for pid, due in rows]


def stalled_backfills(quiet_for: timedelta = timedelta(minutes=10)) -> list[int]:
    """Backfills still queued or running that made no progress for a while (their job was lost)."""
    cutoff = utcnow() - quiet_for
    return list(db.session.scalars(select(Backfill.id).where(
        Backfill.state.in_(("queued", "running")), Backfill.updated_at < cutoff)))
