"""Xero housekeeping jobs: keep refresh tokens alive well inside Xero's 60-day idle expiry."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select

from webapp.extensions import db
from webapp.models import XeroConnection, utcnow

logger = logging.getLogger(__name__)

KEEP_ALIVE_AFTER = timedelta(days=7)


def keep_alive_all() -> int:
    """Scanner: enqueue a refresh for each active connection not refreshed for KEEP_ALIVE_AFTER."""
    from jobs.queues import enqueue

    cutoff = utcnow() - KEEP_ALIVE_AFTER
    ids = db.session.scalars(
        select(XeroConnection.id).where(
            XeroConnection.status == "active",
            or_(XeroConnection.last_refreshed_at.is_(None), XeroConnection.last_refreshed_at < cutoff),
        )
    ).all()
    for connection_id in ids:
        enqueue("jobs.xero.keep_alive", connection_id, queue_name="maintenance",
                job_id=f"xero-keep-alive-{connection_id}")
    return len(ids)


def keep_alive(connection_id: int) -> bool:
    """Refresh one connection's tokens now (single-flight); False when it is gone or not usable."""
    from webapp.xero.tokens import ConnectionUnavailable, access_token

    try:
        access_token(connection_id, force=True)
    except ConnectionUnavailable as exc:
        logger.warning("keep-alive skipped connection %s: %s", connection_id, exc)
        return False
    return True
