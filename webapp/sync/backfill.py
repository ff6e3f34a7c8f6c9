"""Backfill ("synchronise from a previous date"): discover every invoice issued since a date (SPEC §7)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import func, select, text

from webapp.audit import record
from webapp.clients.errors import ClientError
from webapp.extensions import db
from webapp.models import Backfill, Practice, SyncJob, User, utcnow
from webapp.sync import states
from webapp.sync.changes import CANCELLED
from webapp.sync.context import load
from webapp.sync.discovery import _pages, record_page

logger = logging.getLogger(__name__)

BACKFILL_PRIORITY = 1


class BackfillError(ValueError):
    """A backfill cannot start; the message says why."""


def start(practice: Practice, since: date, user: User | None) -> Backfill:
    """Create a backfill row and enqueue its discovery job (caller commits first? no: this commits)."""
    from jobs.queues import enqueue

    if since > date.today():
        raise BackfillError("The backfill date is in the future.")
    running = db.session.scalar(select(Backfill).where(
        Backfill.practice_id == practice.id, Backfill.state.in_(("queued", "running"))))
    if running is not None:
        raise BackfillError(f"A backfill from {running.from_date} is already {running.state}; cancel it first.")
    backfill = Backfill(practice_id=practice.id, from_date=since, requested_by_id=getattr(user, "id", None),
                        state="queued")
    db.session.add(backfill)
    db.session.flush()
    record("backfill.start", user=user, object_type="backfill", object_id=backfill.id, practice_id=practice.id,
           details={"since": since.isoformat()})
    db.session.commit()  # commit before enqueue: the job must find the row
    enqueue("jobs.sync.run_backfill", backfill.id, queue_name="discovery", job_id=f"backfill-{backfill.id}")
    return backfill


def run(backfill_id: int, client=None, on_page: Callable[[Backfill], None] | None = None) -> Backfill | None:
    """Walk Cliniko invoices issued since the date, recording rows page by page; stops when cancelled.

    `on_page` is called after each committed page (the job uses it to start pushing at once)."""
    from webapp.practices import cliniko_client

    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None or backfill.state in ("done", "cancelled"):
        return backfill
    practice = db.session.get(Practice, backfill.practice_id)
    backfill.state, backfill.started_at = "running", backfill.started_at or utcnow()
    db.session.commit()
    from webapp.sync.discovery import ID_CHUNK

    client = client or cliniko_client(practice, id_chunk=ID_CHUNK)
    ctx = load(practice)
    # Live invoices only (Cliniko leaves archived and deleted ones out unless asked).
    params = [("q[]", f"issue_date:>={backfill.from_date.isoformat()}"), ("sort", "issue_date,id")]
    discovered = pages = 0
    patient_cache: dict = {}
    try:
        for page in _pages(client.paginate("invoices", "invoices", params)):
            db.session.refresh(backfill)
            if backfill.state == "cancelled":
                logger.info("backfill %s cancelled after %s invoices", backfill.id, discovered)
                return backfill
            record_page(ctx, client, page, priority=BACKFILL_PRIORITY, backfill_id=backfill.id,
                        patient_cache=patient_cache)
            discovered += len(page)
            pages += 1
            backfill.discovered = discovered
            db.session.commit()
            if pages & (pages - 1) == 0:  # after pages 1, 2, 4, 8, …: the planner sees the table as it grows
                refresh_statistics()
            if on_page is not None:
                on_page(backfill)
    except ClientError as exc:
        db.session.rollback()
        backfill = db.session.get(Backfill, backfill_id)
        backfill.state, backfill.error, backfill.finished_at = "failed", exc.message[:2000], utcnow()
        db.session.commit()
        return backfill
    backfill.total = discovered
    backfill.state = "done"
    backfill.finished_at = utcnow()
    db.session.commit()
    refresh_statistics()
    return backfill


def refresh_statistics() -> None:
    """ANALYZE the job table after a bulk change, so the claim, the follow-up look-ups and the screens are
    planned for the rows it now holds. Autovacuum does this only after its next nap (a minute), or never
    when it is off (as on the development machine), and until then Postgres plans for an empty table: the
    look-up of a batch's 50 payments read all 1,763 payments of a 2,000-invoice backfill (2.7 ms instead of
    0.5 ms; each claim, look-up and screen query likewise). SKIP_LOCKED: if another worker is already
    analysing it, that is enough."""
    db.session.execute(text("ANALYZE (SKIP_LOCKED) sync_jobs"))
    db.session.commit()


def cancel(backfill: Backfill, user: User | None) -> int:
    """Stop discovering and skip this backfill's rows not yet sent; returns how many were skipped."""
    if backfill.state not in ("queued", "running"):
        raise BackfillError(f"The backfill is {backfill.state}; only a queued or running one can be cancelled.")
    backfill.state, backfill.cancelled_at = "cancelled", utcnow()
    rows = db.session.scalars(select(SyncJob).where(
        SyncJob.backfill_id == backfill.id, SyncJob.status.in_(("pending", "retrying", "waiting")))).all()
    for row in rows:
        states.skip(row, CANCELLED)
    record("backfill.cancel", user=user, object_type="backfill", object_id=backfill.id,
           practice_id=backfill.practice_id, details={"skipped": len(rows)})
    return len(rows)


@dataclass
class Progress:
    """Counts and an ETA for the backfill screen and `sync backfill --wait`."""

    discovered: int
    synced: int
    failed: int
    remaining: int
    other: int
    eta_seconds: float | None

    @property
    def done(self) -> bool:
        return self.remaining == 0


def progress(backfill: Backfill) -> Progress:
    """Counts of this backfill's rows by outcome, and an ETA from the tenant's rate budget."""
    counts = dict(db.session.execute(
        select(SyncJob.status, func.count()).where(SyncJob.backfill_id == backfill.id).group_by(SyncJob.status)
    ).all())
    remaining = sum(counts.get(s, 0) for s in ("pending", "retrying", "waiting", "running"))
    config = current_app.config
    per_window = max(int(config["XERO_CALLS_PER_WINDOW"]), 1)
    calls = math.ceil(remaining / max(int(config["XERO_BATCH_SIZE"]), 1)) * 2  # ~contacts + documents
    eta = calls / per_window * float(config["XERO_RATE_WINDOW_SECONDS"]) if remaining else 0.0
    return Progress(
        discovered=backfill.discovered, synced=counts.get("synced", 0), failed=counts.get("failed", 0),
        remaining=remaining, other=counts.get("skipped", 0) + counts.get("ignored", 0), eta_seconds=eta,
    )
