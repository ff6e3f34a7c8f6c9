"""Bulk actions from the job list, run by a worker (SPEC §7 Re-queue, §8 screen 4).

The view enqueues these with plain data only: the requesting user's id and a JSON string (a list of
row ids, or the list's filter values). Each job reloads the user and re-applies their practice
scope and role, so a row outside that scope is never touched whatever ids were sent.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from webapp.admin.job_forms import JobFilter, filtered_query
from webapp.extensions import db
from webapp.models import SyncJob, User
from webapp.sync import requeue as requeue_mod

logger = logging.getLogger(__name__)

CHUNK = 1000


def _admin(user_id: int) -> User | None:
    """The requesting user if they may still run bulk actions (active admin), else None."""
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or not user.is_admin:
        logger.warning("bulk action refused: user %s is not an active admin", user_id)
        return None
    return user


def _ids(ids_json: str) -> list[int]:
    values = json.loads(ids_json) if ids_json else []
    return sorted({int(v) for v in values if str(v).isdigit()})


def _scoped(query, user: User):
    if user.practice_id is not None:
        query = query.where(SyncJob.practice_id == user.practice_id)
    return query


def _chunks(ids: list[int]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def requeue_selected(user_id: int, ids_json: str) -> dict:
    """Re-queue the given rows (failed/ignored ones) that are in the user's scope."""
    user = _admin(user_id)
    if user is None:
        return {"requeued": 0, "refused": True}
    total = 0
    for chunk in _chunks(_ids(ids_json)):
        total += requeue_mod.requeue(_scoped(requeue_mod.matching(ids=chunk), user), user, reason="requeue.bulk")
    return {"requeued": total}


def ignore_selected(user_id: int, ids_json: str, reason: str) -> dict:
    """Ignore the given rows in the user's scope, with the reason (audited per practice)."""
    user = _admin(user_id)
    if user is None or not (reason or "").strip():
        return {"ignored": 0, "refused": True}
    total = 0
    for chunk in _chunks(_ids(ids_json)):
        practices = db.session.scalars(_scoped(select(SyncJob.practice_id).where(SyncJob.id.in_(chunk)), user)
                                       .distinct()).all()
        for practice_id in practices:
            query = requeue_mod.matching([practice_id], ids=chunk)
            total += requeue_mod.ignore(query, user, reason.strip())
    return {"ignored": total}


def requeue_matching(user_id: int, filters_json: str) -> dict:
    """Re-queue every failed/ignored row matching the job list's filter, within the user's scope."""
    user = _admin(user_id)
    if user is None:
        return {"requeued": 0, "refused": True}
    filters = JobFilter.from_dict(json.loads(filters_json or "{}"))
    base = filtered_query(filters, user, select(SyncJob.id)).where(
        SyncJob.status.in_(requeue_mod.REQUEUEABLE))
    ids = db.session.scalars(base.order_by(SyncJob.id)).all()
    total = 0
    for chunk in _chunks(list(ids)):
        total += requeue_mod.requeue(_scoped(requeue_mod.matching(ids=chunk), user), user, reason="requeue.bulk")
    return {"requeued": total, "matched": len(ids)}
