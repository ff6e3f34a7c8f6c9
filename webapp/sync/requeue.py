"""Re-queue: one function for one row, selected rows, or every row matching a filter (SPEC §7)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import Select, select

from webapp.audit import record
from webapp.extensions import db
from webapp.models import SyncJob, User
from webapp.sync import states

logger = logging.getLogger(__name__)

REQUEUEABLE = ("failed", "ignored")


def matching(practice_ids: Iterable[int] | None = None, *, status: str | None = None,
             category: str | None = None, kind: str | None = None, ids: Iterable[int] | None = None) -> Select:
    """A query for job rows by the job list's filters."""
    query = select(SyncJob)
    if practice_ids is not None:
        query = query.where(SyncJob.practice_id.in_(list(practice_ids)))
    if ids is not None:
        query = query.where(SyncJob.id.in_(list(ids)))
    if status:
        query = query.where(SyncJob.status == status)
    if category:
        query = query.where(SyncJob.error_category == category)
    if kind:
        query = query.where(SyncJob.kind == kind)
    return query


def requeue(query: Select, user: User | None, *, reason: str = "requeue", enqueue: bool = True) -> int:
    """failed/ignored → pending (attempts kept), an audit entry per practice, and a push enqueued."""
    rows = db.session.scalars(query.where(SyncJob.status.in_(REQUEUEABLE)).with_for_update(skip_locked=True)).all()
    by_practice: dict[int, list[int]] = {}
    for row in rows:
        states.requeue(row)
        row.reconcile = row.reconcile or row.error_category == "transient"
        by_practice.setdefault(row.practice_id, []).append(row.id)
    for practice_id, job_ids in by_practice.items():
        record(reason, user=user, object_type="sync_job", object_id=job_ids[0] if len(job_ids) == 1 else None,
               practice_id=practice_id, details={"count": len(job_ids), "ids": job_ids[:100]})
    db.session.commit()
    if enqueue:
        from jobs.sync import enqueue_push

        for practice_id in by_practice:
            enqueue_push(practice_id)
    return len(rows)


def requeue_fixable(practice_id: int, user: User | None, categories: tuple[str, ...] = ("mapping", "totals")) -> int:
    """After a mapping or setting change: re-queue the failures that change could fix."""
    query = select(SyncJob).where(SyncJob.practice_id == practice_id, SyncJob.status == "failed",
                                  SyncJob.error_category.in_(categories))
    return requeue(query, user, reason="requeue.auto")


def ignore(query: Select, user: User | None, reason: str) -> int:
    """A person ignores rows (with a reason); audited."""
    rows = db.session.scalars(query.where(SyncJob.status.in_(("failed", "pending", "retrying", "waiting")))).all()
    for row in rows:
        states.ignore(row, reason)
    if rows:
        record("ignore", user=user, practice_id=rows[0].practice_id,
               details={"count": len(rows), "reason": reason, "ids": [r.id for r in rows][:100]})
    db.session.commit()
    return len(rows)
