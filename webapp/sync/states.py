"""The job state machine: the one place where a sync job's `status` changes (SPEC §5).

Views, jobs and the engine call these functions; none of them assigns `status` directly.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, text, update
from sqlalchemy.orm.attributes import set_committed_value

from webapp.extensions import db
from webapp.models import SyncJob, utcnow

logger = logging.getLogger(__name__)

# Which states each state may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "waiting", "skipped", "ignored", "failed"}),
    "running": frozenset({"synced", "failed", "retrying", "pending", "waiting", "skipped"}),
    "retrying": frozenset({"running", "pending", "skipped", "ignored", "failed"}),
    "waiting": frozenset({"pending", "skipped", "ignored", "failed"}),
    "synced": frozenset({"pending"}),
    "failed": frozenset({"pending", "skipped", "ignored"}),
    "skipped": frozenset({"pending"}),
    "ignored": frozenset({"pending"}),
}

PERMANENT_CATEGORIES = frozenset({"validation", "mapping", "totals", "conflict", "auth"})
MAX_BACKOFF = timedelta(hours=6)


class InvalidTransition(ValueError):
    """A state change the machine does not allow (e.g. synced → failed)."""

    def __init__(self, job: SyncJob, to: str):
        super().__init__(f"Job {job.id} cannot go from {job.status} to {to}")
        self.from_status = job.status
        self.to_status = to


def can_move(from_status: str, to_status: str) -> bool:
    """True when the machine allows from_status → to_status."""
    return to_status in TRANSITIONS.get(from_status, frozenset())


def _move(job: SyncJob, to: str) -> None:
    if not can_move(job.status, to):
        raise InvalidTransition(job, to)
    logger.debug("job %s: %s -> %s", job.id, job.status, to)
    job.status = to


ERROR_FIELDS = ("failure_reason", "suggested_fix", "error_category", "error_detail")
#: What a row no longer has once Xero accepted it (mark_synced, mark_synced_many).
CLEARED_WHEN_SYNCED = ("claimed_by", "heartbeat_at", "next_attempt_at", "status_reason", *ERROR_FIELDS)


def _clear_error(job: SyncJob) -> None:
    for name in ERROR_FIELDS:
        setattr(job, name, None)


def claim(job: SyncJob, worker: str, now: datetime | None = None) -> None:
    """A worker takes the row (pending or retrying → running) and counts an attempt."""
    now = now or utcnow()
    _move(job, "running")
    job.claimed_by = worker
    job.heartbeat_at = now
    job.attempts += 1


def sources_of(to_status: str) -> tuple[str, ...]:
    """The states the machine allows to move to `to_status` (for set-based changes checked in SQL)."""
    return tuple(sorted(s for s, targets in TRANSITIONS.items() if to_status in targets))


def claim_many(candidates: Select, worker: str, now: datetime | None = None) -> list[SyncJob]:
    """Claim in one statement the rows whose ids `candidates` selects (the caller's filter, order, limit and
    `FOR UPDATE SKIP LOCKED`): each one still in a state that may become `running` moves there, counts an
    attempt and gets `claimed_by` and `heartbeat_at`, like `claim`. Rows in any other state are left alone.
    Returns the claimed rows (loaded, in no particular order); the caller commits."""
    now = now or utcnow()
    stmt = (update(SyncJob)
            .where(SyncJob.id.in_(candidates.scalar_subquery()), SyncJob.status.in_(sources_of("running")))
            .values(status="running", claimed_by=worker, heartbeat_at=now, attempts=SyncJob.attempts + 1,
                    updated_at=now)
            .returning(SyncJob))
    rows = list(db.session.scalars(stmt, execution_options={"synchronize_session": False,
                                                            "populate_existing": True}))
    logger.debug("claimed %s rows for %s", len(rows), worker)
    return rows


# One statement for a batch (a statement-level trigger on sync_jobs runs once, not once per row); the text is
# constant, so it is parsed and planned once per connection. Cleared columns are SQL NULL (error_detail too).
_SYNCED_MANY = text(f"""
    UPDATE sync_jobs AS j
    SET status = 'synced', xero_id = coalesce(v.xero_id, j.xero_id), sent_hash = v.sent_hash,
        payload_hash = coalesce(v.payload_hash, j.payload_hash), synced_at = :now, reconcile = false,
        updated_at = :now, {", ".join(f"{name} = NULL" for name in CLEARED_WHEN_SYNCED)}
    FROM unnest(CAST(:ids AS integer[]), CAST(:xero_ids AS varchar[]), CAST(:sent AS varchar[]),
                CAST(:payload AS varchar[])) AS v(id, xero_id, sent_hash, payload_hash)
    WHERE j.id = v.id AND j.status = ANY(CAST(:sources AS varchar[]))
    RETURNING j.id
""")  # noqa: S608 (column names of this module only)


def mark_synced_many(done: Iterable[tuple], now: datetime | None = None) -> list[SyncJob]:
    """`mark_synced` for many running rows in one statement: (row, xero_id, sent_hash[, payload_hash]) each;
    also clears `reconcile`, records `sent_hash` (the row's `payload_hash` when None) and, when given, the
    `payload_hash` of what was sent (else the column is left as it is). Every row is checked against
    the machine first (InvalidTransition, nothing written), and the statement only touches rows still
    `running` in the database: a row moved meanwhile by someone else (e.g. the reaper released it, flagged
    for a look-up) is left as the database has it, reloaded, and not returned. The rows written are
    updated in place as the database now holds them and returned. The caller commits."""
    done = list(done)
    if not done:
        return []
    done = [(job, xero_id, sent_hash, payload_hash) for job, xero_id, sent_hash, payload_hash in
            (tuple(d) + (None,) * (4 - len(d)) for d in done)]
    for job, *_ in done:
        if not can_move(job.status, "synced"):
            raise InvalidTransition(job, "synced")
    db.session.flush()  # what is pending on these rows first, so the statement below is the last word
    now = now or utcnow()
    rows = {job.id: (xero_id or job.xero_id, sent_hash or payload_hash or job.payload_hash, payload_hash)
            for job, xero_id, sent_hash, payload_hash in done}
    cleared = dict.fromkeys(CLEARED_WHEN_SYNCED)
    written = set(db.session.execute(_SYNCED_MANY, {
        "ids": list(rows), "xero_ids": [w[0] for w in rows.values()], "sent": [w[1] for w in rows.values()],
        "payload": [w[2] for w in rows.values()], "now": now, "sources": list(sources_of("synced"))}).scalars())
    result = []
    for job, *_ in done:
        if job.id not in written:
            logger.warning("job %s was no longer running when Xero accepted it; left as it is", job.id)
            db.session.expire(job)
            continue
        result.append(job)
        xero_id, sent_hash, payload_hash = rows[job.id]
        committed = {"status": "synced", "xero_id": xero_id, "sent_hash": sent_hash, "synced_at": now,
                     "reconcile": False, "updated_at": now, **cleared}
        if payload_hash is not None:
            committed["payload_hash"] = payload_hash
        for name, value in committed.items():
            set_committed_value(job, name, value)
    logger.debug("%s rows synced", len(result))
    return result


def mark_synced(job: SyncJob, xero_id: str | None, now: datetime | None = None) -> None:
    """Xero accepted it (running → synced)."""
    _move(job, "synced")
    job.xero_id = xero_id or job.xero_id
    job.synced_at = now or utcnow()
    for name in CLEARED_WHEN_SYNCED:
        setattr(job, name, None)


def mark_failed(
    job: SyncJob, category: str, reason: str, fix: str | None = None, detail: dict | None = None
) -> None:
    """A permanent error, or transient errors beyond max attempts (running → failed)."""
    _move(job, "failed")
    job.error_category = category
    job.failure_reason = reason
    job.suggested_fix = fix
    job.error_detail = detail
    job.claimed_by = None
    job.heartbeat_at = None
    job.next_attempt_at = None


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Delay before retry number `attempt`: min(attempt^4 + 15 s + jitter, 6 h)."""
    rng = rng or random
    seconds = attempt**4 + 15 + rng.uniform(0, 10 * (attempt + 1))
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def mark_error(
    job: SyncJob,
    category: str,
    reason: str,
    fix: str | None = None,
    detail: dict | None = None,
    retry_after: float | None = None,
    now: datetime | None = None,
) -> str:
    """Record an error on a running job: transient → retrying (or failed past max attempts);
    any other category → failed at once. Returns the new status."""
    if category not in PERMANENT_CATEGORIES and job.attempts < job.max_attempts:
        now = now or utcnow()
        _move(job, "retrying")
        delay = backoff(job.attempts)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        job.next_attempt_at = now + delay
        job.error_category = category
        job.failure_reason = reason
        job.suggested_fix = fix
        job.error_detail = detail
        job.claimed_by = None
        job.heartbeat_at = None
        return "retrying"
    if category not in PERMANENT_CATEGORIES:
        reason = f"{reason} (gave up after {job.attempts} attempts)"
    mark_failed(job, category, reason, fix, detail)
    return "failed"


def release(job: SyncJob, reason: str = "interrupted", now: datetime | None = None) -> None:
    """Give a claimed row back (running → pending), e.g. on shutdown or by the reaper."""
    _move(job, "pending")
    job.claimed_by = None
    job.heartbeat_at = None
    job.next_attempt_at = now or utcnow()
    job.status_reason = reason


def requeue(job: SyncJob, now: datetime | None = None) -> None:
    """A person or a fix sends it again: failed/ignored/skipped/retrying → pending, attempts kept."""
    _move(job, "pending")
    job.next_attempt_at = now or utcnow()
    job.status_reason = None


def resend(job: SyncJob, now: datetime | None = None) -> None:
    """The source changed after sync (synced → pending) so Xero gets the update."""
    _move(job, "pending")
    job.next_attempt_at = now or utcnow()
    job.attempts = 0
    _clear_error(job)


def wait(job: SyncJob, reason: str) -> None:
    """The row depends on another that is not in Xero yet (pending/running → waiting)."""
    _move(job, "waiting")
    job.status_reason = reason
    job.claimed_by = None
    job.heartbeat_at = None


def release_waiting(job: SyncJob, now: datetime | None = None) -> None:
    """What it waited for is done (waiting → pending)."""
    _move(job, "pending")
    job.next_attempt_at = now or utcnow()
    job.status_reason = None


def skip(job: SyncJob, reason: str) -> None:
    """A filter excludes it; the reason is kept."""
    _move(job, "skipped")
    job.status_reason = reason
    job.claimed_by = None
    job.heartbeat_at = None


def ignore(job: SyncJob, reason: str) -> None:
    """A person chose to ignore it; a reason is required."""
    if not reason or not reason.strip():
        raise ValueError("A reason is required to ignore a job.")
    _move(job, "ignored")
    job.status_reason = reason.strip()


def fail_unreadable(job: SyncJob, reason: str, fix: str) -> None:
    """Discovery could not read the source record: fail it (validation) without a send attempt."""
    if job.status not in ("pending", "retrying", "waiting"):
        raise InvalidTransition(job, "failed")
    _move(job, "failed")
    job.error_category = "validation"
    job.failure_reason = reason
    job.suggested_fix = fix
    job.claimed_by = None
    job.heartbeat_at = None
    job.next_attempt_at = None
