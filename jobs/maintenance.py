"""Periodic housekeeping jobs run from the clock."""

from __future__ import annotations

import logging
import os
import time

from jobs.queues import connection

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "clock:heartbeat"


def heartbeat() -> float:
    """Record that the clock → queue → worker path works: last time and a run counter in Redis."""
    now = time.time()
    conn = connection()
    pipe = conn.pipeline()
    pipe.hset(HEARTBEAT_KEY, mapping={"last": now, "pid": os.getpid()})
    pipe.hincrby(HEARTBEAT_KEY, "runs", 1)
    pipe.execute()
    logger.info("heartbeat")
    return now


def purge_attempt_payloads(practice_id: int) -> int:
    """Blank request/response bodies of one practice's attempts older than its retention (SPEC §13)."""
    from datetime import timedelta

    from sqlalchemy import null, select, update

    from webapp.extensions import db
    from webapp.models import Practice, SyncAttempt, SyncJob, utcnow

    practice = db.session.get(Practice, practice_id)
    if practice is None:
        logger.info("practice %s is gone; nothing to purge", practice_id)
        return 0
    days = int((practice.settings or {}).get("payload_retention_days", 30))
    cutoff = utcnow() - timedelta(days=days)
    job_ids = select(SyncJob.id).where(SyncJob.practice_id == practice_id)
    result = db.session.execute(
        update(SyncAttempt)
        .where(SyncAttempt.job_id.in_(job_ids), SyncAttempt.started_at < cutoff)
        .where((SyncAttempt.request_body.is_not(None)) | (SyncAttempt.response_body.is_not(None)))
        .values(request_body=null(), response_body=null())  # SQL NULL, not JSON 'null'
    )
    db.session.commit()
    logger.info("purged payloads of %s attempts of practice %s", result.rowcount, practice_id)
    return result.rowcount


def purge_all_payloads() -> int:
    """Scanner: enqueue one purge per practice; returns how many were enqueued."""
    from sqlalchemy import select

    from jobs.queues import enqueue
    from webapp.extensions import db
    from webapp.models import Practice

    ids = db.session.scalars(select(Practice.id)).all()
    for practice_id in ids:
        enqueue("jobs.maintenance.purge_attempt_payloads", practice_id, queue_name="maintenance")
    return len(ids)
