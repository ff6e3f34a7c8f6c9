"""The job state machine: every allowed transition works, every other one is refused."""

import random
from datetime import timedelta

import pytest

from webapp.models import JOB_STATUSES, SyncJob, utcnow
from webapp.sync import states

ALLOWED = {(a, b) for a, targets in states.TRANSITIONS.items() for b in targets}
ALL_PAIRS = [(a, b) for a in JOB_STATUSES for b in JOB_STATUSES]


def job(status="pending", attempts=0, max_attempts=12):
    return SyncJob(id=1, practice_id=1, kind="invoice", cliniko_id="1", status=status,
                   attempts=attempts, max_attempts=max_attempts)


def test_every_state_is_in_the_machine():
    assert set(states.TRANSITIONS) == set(JOB_STATUSES)


@pytest.mark.parametrize(("from_status", "to_status"), ALL_PAIRS)
def test_can_move_matches_the_table(from_status, to_status):
    assert states.can_move(from_status, to_status) == ((from_status, to_status) in ALLOWED)


@pytest.mark.parametrize(("from_status", "to_status"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_refused_transitions_raise_and_leave_the_row_alone(from_status, to_status):
    row = job(from_status)
    with pytest.raises(states.InvalidTransition, match=f"from {from_status} to {to_status}"):
        states._move(row, to_status)
    assert row.status == from_status


def test_claim_counts_an_attempt_and_sets_heartbeat():
    row = job("pending")
    states.claim(row, "worker-1")
    assert (row.status, row.attempts, row.claimed_by) == ("running", 1, "worker-1")
    assert row.heartbeat_at is not None


def test_claim_from_retrying():
    row = job("retrying", attempts=2)
    states.claim(row, "w")
    assert (row.status, row.attempts) == ("running", 3)


@pytest.mark.parametrize("status", ["synced", "failed", "waiting", "skipped", "ignored", "running"])
def test_claim_refused_outside_pending_and_retrying(status):
    with pytest.raises(states.InvalidTransition):
        states.claim(job(status), "w")


def test_synced_clears_the_error_and_keeps_the_xero_id():
    row = job("running")
    row.failure_reason, row.error_category = "old", "transient"
    states.mark_synced(row, "INV-UUID")
    assert (row.status, row.xero_id, row.failure_reason, row.error_category) == ("synced", "INV-UUID", None, None)
    assert row.synced_at is not None and row.claimed_by is None


def test_transient_error_retries_with_backoff():
    row = job("running", attempts=1)
    now = utcnow()
    assert states.mark_error(row, "transient", "Xero timed out", now=now) == "retrying"
    assert row.status == "retrying"
    assert now + timedelta(seconds=16) <= row.next_attempt_at <= now + timedelta(seconds=16 + 20)


def test_retry_after_is_honoured():
    row = job("running", attempts=1)
    now = utcnow()
    states.mark_error(row, "transient", "429", retry_after=600, now=now)
    assert row.next_attempt_at >= now + timedelta(seconds=600)


def test_transient_error_past_max_attempts_fails():
    row = job("running", attempts=12, max_attempts=12)
    assert states.mark_error(row, "transient", "Xero returned 503") == "failed"
    assert row.failure_reason == "Xero returned 503 (gave up after 12 attempts)"


@pytest.mark.parametrize("category", sorted(states.PERMANENT_CATEGORIES))
def test_permanent_errors_fail_at_once(category):
    row = job("running", attempts=1)
    assert states.mark_error(row, category, "bad", fix="do this", detail={"http_status": 400}) == "failed"
    assert (row.error_category, row.suggested_fix, row.error_detail) == (category, "do this", {"http_status": 400})


def test_backoff_grows_and_is_capped_at_six_hours():
    rng = random.Random(1)
    delays = [states.backoff(n, rng) for n in (1, 2, 3, 5, 10, 50)]
    assert delays == sorted(delays)
    assert delays[-1] == timedelta(hours=6)


def test_requeue_keeps_attempts():
    row = job("failed", attempts=4)
    states.requeue(row)
    assert (row.status, row.attempts) == ("pending", 4)
    assert row.next_attempt_at is not None


def test_resend_after_sync_resets_attempts():
    row = job("synced", attempts=3)
    states.resend(row)
    assert (row.status, row.attempts) == ("pending", 0)


def test_ignore_needs_a_reason():
    row = job("failed")
    with pytest.raises(ValueError, match="reason is required"):
        states.ignore(row, "   ")
    assert row.status == "failed"
    states.ignore(row, "duplicate in Cliniko")
    assert (row.status, row.status_reason) == ("ignored", "duplicate in Cliniko")


def test_wait_skip_and_release():
    row = job("pending")
    states.wait(row, "invoice not in Xero yet")
    assert (row.status, row.status_reason) == ("waiting", "invoice not in Xero yet")
    states.release_waiting(row)
    assert row.status == "pending"
    states.skip(row, "zero total")
    assert (row.status, row.status_reason) == ("skipped", "zero total")
    running = job("running")
    states.release(running)
    assert (running.status, running.status_reason, running.claimed_by) == ("pending", "interrupted", None)


def test_states_are_enforced_by_the_database_too(db, make_practice):
    from sqlalchemy.exc import IntegrityError

    practice = make_practice()
    db.session.add(SyncJob(practice_id=practice.id, kind="invoice", cliniko_id="9", status="bogus"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
