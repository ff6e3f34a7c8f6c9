"""Thin RQ jobs for the sync engine: take ids, reload rows, call webapp.sync."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from sqlalchemy import select

from jobs.queues import enqueue
from webapp.extensions import db
from webapp.models import Practice, utcnow

logger = logging.getLogger(__name__)

PUSH_TIME_BUDGET = float(os.environ.get("PUSH_TIME_BUDGET_SECONDS", "30"))
# A push's turn while other jobs wait for a worker: about one batch, then the practice goes to the back of
# the queue, so practices sharing a few workers take turns instead of being served first come, first served.
# (0.3 s let small practices finish in two turns and others need three: 200 backfilling at once ended 1.63x
# apart; 0.15 s: 1.26x, bench/tenants.py.)
PUSH_TURN = float(os.environ.get("PUSH_TURN_SECONDS", "0.15"))


def push_budget() -> float:
    """The full time budget when nothing else waits for a worker, else one short turn (tenant fairness)."""
    from jobs.queues import QUEUE_NAMES, queue

    try:  # housekeeping waiting does not shorten a push
        waiting = sum(queue(name).count for name in QUEUE_NAMES if name != "maintenance")
    except Exception:  # Redis unreachable: the job itself is about to find out; keep the full budget
        return PUSH_TIME_BUDGET
    return min(PUSH_TURN, PUSH_TIME_BUDGET) if waiting else PUSH_TIME_BUDGET


def enqueue_push(practice_id: int, at=None, queue_name: str = "live", connection_id: int | None = None):
    """Enqueue a push for the practice (every organisation) or one of its organisations, now (deduplicated
    while queued) or at a time."""
    args = (practice_id,) if connection_id is None else (practice_id, connection_id)
    base = f"push-{practice_id}" if connection_id is None else f"push-{practice_id}-{connection_id}"
    if at is not None and at > utcnow() + timedelta(seconds=0.5):
        return enqueue("jobs.sync.push_practice", *args, queue_name=queue_name, at=at, job_id=f"{base}-at")
    return enqueue("jobs.sync.push_practice", *args, queue_name=queue_name, job_id=base)


def push_practice(practice_id: int, connection_id: int | None = None) -> dict:
    """Send the practice's due rows; re-enqueue itself for more work, a budget refill or the next retry.

    A practice with several active Xero organisations gets one push job per organisation (each with its
    own rate budget, so one organisation out of budget never holds back another)."""
    from rq import get_current_job

    from webapp.sync import routing
    from webapp.sync.push import push

    job = get_current_job()
    queue_name = job.origin if job is not None and job.origin else "live"
    if connection_id is None:
        active = [c.id for c in routing.connections(practice_id) if c.status == "active"]
        if len(active) > 1:
            if routing.assign(practice_id):
                db.session.commit()
            for cid in active:
                enqueue_push(practice_id, queue_name=queue_name, connection_id=cid)
            return {"organisations": len(active)}
    worker = (job.worker_name if job and job.worker_name else None) or f"pid-{os.getpid()}"
    result = push(practice_id, worker, time_budget=push_budget(), connection_id=connection_id)
    if result.reschedule_at is not None:
        enqueue_push(practice_id, at=result.reschedule_at, queue_name=queue_name, connection_id=connection_id)
    elif result.next_due_at is not None:
        enqueue_push(practice_id, at=result.next_due_at, queue_name=queue_name, connection_id=connection_id)
    logger.info("push of practice %s (organisation %s): %s", practice_id, connection_id or "all", result)
    return {"synced": result.synced, "failed": result.failed, "retrying": result.retrying,
            "waiting": result.waiting, "batches": result.batches, "stopped": result.stopped}


def poll_practice(practice_id: int) -> dict:
    """One discovery pass; a failure is recorded on the practice and retried at the next tick."""
    from webapp.sync import routing
    from webapp.sync.discovery import poll
    from webapp.sync.push import next_due

    try:
        counts = poll(practice_id)
    except Exception as exc:  # recorded on the practice by poll(); retried at the next tick
        return {"error": getattr(exc, "message", None) or str(exc)}
    if routing.assign(practice_id):  # the rows just recorded go to their businesses' organisations
        db.session.commit()
    if next_due(practice_id) is not None:
        enqueue_push(practice_id)
    return counts.__dict__


def poll_all() -> int:
    """Clock: enqueue a poll for every enabled practice (one queued poll per practice at most)."""
    ids = db.session.scalars(select(Practice.id).where(Practice.sync_enabled.is_(True))).all()
    for practice_id in ids:
        enqueue("jobs.sync.poll_practice", practice_id, job_id=f"poll-{practice_id}")
    return len(ids)


def reap() -> dict:
    """Clock: return stale claims to pending and make sure every practice with due rows has a push."""
    from webapp.sync.reaper import (
        practices_with_due_rows,
        reap_stale,
        release_stranded_waiting,
        stalled_backfills,
    )

    released = reap_stale() + release_stranded_waiting()
    for backfill_id in stalled_backfills():
        enqueue("jobs.sync.run_backfill", backfill_id, queue_name="discovery", job_id=f"backfill-{backfill_id}")
    practices = practices_with_due_rows()
    for practice_id, due_at in practices:
        enqueue_push(practice_id, at=due_at)
    return {"released": released, "practices": len(practices)}


def run_backfill(backfill_id: int) -> dict:
    """Discover every invoice of a backfill (resumable; cancellable between pages)."""
    from webapp.sync.backfill import run

    def start_pushing(row) -> None:
        from webapp.sync import routing

        if routing.assign(row.practice_id):  # each page's rows go to their businesses' organisations
            db.session.commit()
        # Push while discovery goes on: each page's rows need not wait for the last page. After every page,
        # not just the first: a push that has sent everything found so far ends, and Cliniko's rate limit
        # makes discovery the slower of the two (a push already queued is not queued twice).
        enqueue_push(row.practice_id, queue_name="backfill")

    backfill = run(backfill_id, on_page=start_pushing)
    if backfill is not None and backfill.state in ("running", "done"):
        enqueue_push(backfill.practice_id, queue_name="backfill")
    return {"state": backfill.state if backfill else None}
