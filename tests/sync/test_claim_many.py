"""Set-based state changes used by the push (webapp.sync.states.claim_many / mark_synced_many), on real
Postgres: only claimable rows are claimed, concurrent claimers never get the same row (FOR UPDATE SKIP
LOCKED, separate connections), and a batch is marked synced only where the row is still running."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from webapp.extensions import db
from webapp.models import JOB_STATUSES, SyncAttempt, SyncJob, utcnow
from webapp.sync import states
from webapp.sync.push import Pusher


def make_rows(practice, statuses) -> list[SyncJob]:
    rows = [SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=str(n), status=status, attempts=1,
                    max_attempts=12, next_attempt_at=utcnow() - timedelta(seconds=1), priority=0,
                    reconcile=False) for n, status in enumerate(statuses)]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def due(practice_id, limit=1000):
    """What Pusher.claim selects: due rows, oldest first, locked and skipped when someone else holds them."""
    return (select(SyncJob.id).where(SyncJob.practice_id == practice_id, SyncJob.status.in_(("pending", "retrying")))
            .order_by(SyncJob.priority, SyncJob.next_attempt_at, SyncJob.id).limit(limit)
            .with_for_update(skip_locked=True))


def test_sources_of_follows_the_machine():
    assert states.sources_of("running") == ("pending", "retrying")
    assert states.sources_of("synced") == ("running",)


def test_claim_many_takes_only_rows_the_machine_lets_run(make_practice):
    practice = make_practice()
    rows = make_rows(practice, JOB_STATUSES)
    everything = select(SyncJob.id).where(SyncJob.practice_id == practice.id)  # no status filter at all
    claimed = states.claim_many(everything, "worker-a")
    db.session.commit()
    assert sorted(r.status for r in claimed) == ["running", "running"]
    assert {r.id for r in claimed} == {r.id for r in rows
                                       if states.can_move(JOB_STATUSES[int(r.cliniko_id)], "running")}
    db.session.expire_all()
    for row in rows:
        before = JOB_STATUSES[int(row.cliniko_id)]
        if before in ("pending", "retrying"):
            assert (row.status, row.attempts, row.claimed_by) == ("running", 2, "worker-a")
            assert row.heartbeat_at is not None
        else:
            assert (row.status, row.attempts, row.claimed_by) == (before, 1, None), before


def test_claim_many_loads_the_claimed_rows(make_practice):
    practice = make_practice()
    rows = make_rows(practice, ["pending"] * 3)
    rows[0].source = {"invoice": {"id": 1}}
    db.session.commit()
    claimed = {r.id: r for r in states.claim_many(due(practice.id), "w")}
    assert claimed[rows[0].id] is rows[0]  # the session's object, refreshed in place
    assert rows[0].status == "running" and rows[0].source == {"invoice": {"id": 1}}
    db.session.rollback()


def test_two_claimers_never_get_the_same_row(app, make_practice):
    practice = make_practice()
    make_rows(practice, ["pending"] * 120)
    practice_id = practice.id
    db.session.remove()
    holding, release = threading.Event(), threading.Event()
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def claimer(name: str, hold: bool) -> None:
        try:
            with app.app_context():
                first = True
                while True:
                    rows = states.claim_many(due(practice_id, limit=10), f"worker-{name}")
                    if first and hold:
                        holding.set()  # locks held, not committed yet
                        release.wait(20)
                    first = False
                    db.session.commit()
                    if not rows:
                        break
                    got[name].extend(r.id for r in rows)
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)
            holding.set()

    a = threading.Thread(target=claimer, args=("a", True))
    a.start()
    assert holding.wait(20)
    b = threading.Thread(target=claimer, args=("b", False))
    b.start()
    b.join(60)  # B skips A's locked rows and takes all the others meanwhile
    release.set()
    a.join(60)
    assert not errors
    assert len(got["a"]) == 10 and len(got["b"]) == 110
    assert not set(got["a"]) & set(got["b"])
    counts = dict(db.session.execute(select(SyncJob.claimed_by, func.count()).group_by(SyncJob.claimed_by)).all())
    assert counts == {"worker-a": 10, "worker-b": 110}
    assert db.session.scalar(select(func.max(SyncJob.attempts))) == 2  # each row claimed exactly once


def test_two_racing_claimers_split_the_rows(app, make_practice):
    practice = make_practice()
    make_rows(practice, ["pending"] * 300)
    practice_id = practice.id
    db.session.remove()
    start = threading.Barrier(2)
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            with app.app_context():
                start.wait(10)
                while rows := states.claim_many(due(practice_id, limit=7), f"worker-{name}"):
                    db.session.commit()
                    got[name].extend(r.id for r in rows)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(got["a"]) + len(got["b"]) == 300
    assert not set(got["a"]) & set(got["b"])
    assert db.session.scalar(select(func.count()).where(SyncJob.status == "running")) == 300


def test_mark_synced_many_checks_the_machine_first(make_practice):
    practice = make_practice()
    running, pending = make_rows(practice, ["running", "pending"])
    with pytest.raises(states.InvalidTransition):
        states.mark_synced_many([(running, "x-1"), (pending, "x-2")])
    db.session.rollback()
    db.session.expire_all()
    assert (running.status, pending.status) == ("running", "pending")  # nothing written


def test_mark_synced_many_writes_the_batch_and_leaves_rows_moved_by_someone_else(make_practice):
    practice = make_practice()
    rows = make_rows(practice, ["running"] * 3)
    for row in rows:
        row.reconcile = True
        row.payload_hash = "h-discovered"
        row.error_category, row.failure_reason, row.error_detail = "transient", "timeout", {"a": 1}
    db.session.commit()
    assert [r.status for r in rows] == ["running"] * 3  # loaded: the push keeps its claimed rows in memory
    # Another connection (the reaper) releases the third row meanwhile.
    with db.engine.begin() as other:
        other.execute(update(SyncJob).where(SyncJob.id == rows[2].id).values(status="pending", reconcile=True))
    written = states.mark_synced_many([(rows[0], "x-0"), (rows[1], None, "h-sent", "h-sent"), (rows[2], "x-2")])
    db.session.commit()
    assert written == rows[:2]
    assert rows[0].status == "synced" and rows[0].xero_id == "x-0" and rows[0].sent_hash == "h-discovered"
    assert rows[1].sent_hash == rows[1].payload_hash == "h-sent" and rows[1].xero_id is None
    db.session.expire_all()
    for row in rows[:2]:
        assert (row.status, row.reconcile, row.claimed_by, row.error_category, row.failure_reason) == (
            "synced", False, None, None, None)
        assert row.synced_at is not None
    assert rows[0].payload_hash == "h-discovered"  # not given: left as discovery wrote it
    assert (rows[2].status, rows[2].reconcile, rows[2].xero_id) == ("pending", True, None)
    assert db.session.scalar(text("SELECT count(*) FROM sync_jobs WHERE error_detail IS NULL")) == 2  # SQL NULL


def test_pusher_writes_the_attempts_of_a_commit_in_one_statement(make_practice):
    practice = make_practice()
    row, other = make_rows(practice, ["running", "running"])
    pusher = Pusher.__new__(Pusher)
    pusher._attempts = []
    started = time.monotonic()
    pusher.attempt(row, "synced", batch_id="b1", started=started, call=None, body={"InvoiceNumber": "1"}, key="k")
    pusher.attempt(other, "error", batch_id="mapping", started=started, call=None, body=None, error="bad\x00 text")
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        pusher.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len([s for s in statements if "sync_attempts" in s]) == 1
    attempts = {a.job_id: a for a in db.session.scalars(select(SyncAttempt))}
    assert attempts[row.id].request_body == {"InvoiceNumber": "1"} and attempts[row.id].idempotency_key == "k"
    assert attempts[other.id].error == "bad text" and attempts[other.id].started_at is not None
    assert db.session.scalar(text("SELECT count(*) FROM sync_attempts WHERE request_body IS NULL")) == 1
