"""The activity roll-up (`sync_activity`, kept by Postgres triggers) behind the dashboard charts: rows synced
through the state machine and failed attempts appear in it and in the rendered charts, in the same
transaction as the change; for a mixed data set (several practices and time zones, re-syncs, re-queues,
bulk statements, deletions) every chart bar equals a direct count over `sync_jobs` / `sync_attempts`;
the migration's backfill builds the same roll-up; deleting a practice deletes its slots."""

from __future__ import annotations

import html as htmlmod
import importlib.util
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from tests.conftest import ROOT
from webapp.admin.dashboard import DAYS, HOURS, chart_series, day_buckets, hour_buckets
from webapp.extensions import db
from webapp.models import Practice, SyncActivity, SyncAttempt, SyncJob, utcnow
from webapp.sync import states

PASSWORD = "correct horse battery"
FAILED = ("error", "ambiguous")
ZONES = {"utc": "UTC", "adelaide": "Australia/Adelaide", "kathmandu": "Asia/Kathmandu",
         "stjohns": "America/St_Johns"}


def job(practice: Practice, n, status: str = "pending", **fields) -> SyncJob:
    return SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=f"{practice.slug}-{n}",
                   invoice_number=f"INV-{practice.slug}-{n}", amount=Decimal("12.50"), status=status, **fields)


def sync_through_states(rows: list[SyncJob], at: datetime) -> None:
    """What the engine does: claim (pending → running), then Xero accepted it (running → synced)."""
    for row in rows:
        states.claim(row, "worker.test", now=at)
        states.mark_synced(row, f"xero-{row.cliniko_id}", now=at)
    db.session.commit()


def attempt(row: SyncJob, outcome: str, at: datetime, practice_id: int | None = -1) -> SyncAttempt:
    return SyncAttempt(job_id=row.id, practice_id=row.practice_id if practice_id == -1 else practice_id,
                       started_at=at, finished_at=at + timedelta(seconds=1), outcome=outcome,
                       http_status=200 if outcome == "synced" else 400)


def rollup() -> dict[tuple[int, datetime], tuple[int, int]]:
    return {(a.practice_id, a.slot): (a.synced, a.failed)
            for a in db.session.scalars(select(SyncActivity)) if a.synced or a.failed}


def direct_slots() -> dict[tuple[int, datetime], tuple[int, int]]:
    """The roll-up as it must be: grouped straight from the base tables."""
    slot = "date_bin(interval '15 minutes', {}, timestamptz '2000-01-01 00:00+00')"
    rows = db.session.execute(text(f"""
        SELECT practice_id, slot, sum(synced)::int, sum(failed)::int FROM (
            SELECT practice_id, {slot.format('synced_at')} AS slot, 1 AS synced, 0 AS failed
            FROM sync_jobs WHERE status = 'synced' AND synced_at IS NOT NULL
            UNION ALL
            SELECT practice_id, {slot.format('started_at')}, 0, 1
            FROM sync_attempts WHERE outcome IN ('error', 'ambiguous') AND practice_id IS NOT NULL) c
        GROUP BY 1, 2"""))
    return {(pid, at): (s, f) for pid, at, s, f in rows}


def direct_count(practice_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """(synced, failed) in [start, end) counted over sync_jobs and sync_attempts, not the roll-up."""
    synced = db.session.scalar(select(func.count()).select_from(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.status == "synced", SyncJob.synced_at >= start,
        SyncJob.synced_at < end))
    failed = db.session.scalar(select(func.count()).select_from(SyncAttempt).where(
        SyncAttempt.practice_id == practice_id, SyncAttempt.outcome.in_(FAILED), SyncAttempt.started_at >= start,
        SyncAttempt.started_at < end))
    return synced, failed


def bucket_ranges(buckets: list[datetime], step_end: datetime) -> list[tuple[datetime, datetime]]:
    return list(zip(buckets, [*buckets[1:], step_end], strict=True))


def chart_totals(html: str, chart_id: str) -> tuple[int, int]:
    """The "N synced, M failed" a user reads on one rendered chart."""
    match = re.search(r'<svg[^>]*aria-label="([^"]*)"[^>]*data-testid="' + re.escape(chart_id) + '"', html)
    assert match, f"no chart {chart_id}"
    numbers = re.search(r": (\d+) synced, (\d+) failed$", htmlmod.unescape(match.group(1)))
    return int(numbers.group(1)), int(numbers.group(2))


def test_synced_rows_and_failed_attempts_show_in_the_rollup_and_the_charts(app, web, make_practice, make_user):
    practice = make_practice("alpha", time_zone="UTC")
    make_user("admin@example.com")
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)
    rows = [job(practice, i) for i in range(6)]
    db.session.add_all(rows)
    db.session.commit()
    assert rollup() == {}  # pending rows count for nothing

    sync_through_states(rows[:4], hour - timedelta(minutes=50))  # 10 past the previous hour
    sync_through_states(rows[4:5], hour - timedelta(days=2, minutes=1))  # outside 48 h, inside 30 days
    slot = hour - timedelta(hours=1)
    assert rollup()[(practice.id, slot)] == (4, 0)

    db.session.add_all([attempt(rows[5], "error", hour - timedelta(minutes=20)),
                        attempt(rows[5], "ambiguous", hour - timedelta(minutes=19)),
                        attempt(rows[0], "synced", hour - timedelta(minutes=50)),      # not a failure
                        attempt(rows[5], "interrupted", hour - timedelta(minutes=18))])  # not a failure
    db.session.commit()
    assert rollup()[(practice.id, hour - timedelta(minutes=30))] == (0, 2)

    web.login("admin@example.com", PASSWORD)
    page = web.client.get("/").get_data(as_text=True)
    assert chart_totals(page, f"chart-hours-{practice.id}") == (4, 2)
    assert chart_totals(page, f"chart-days-{practice.id}") == (5, 2)

    # A re-sync moves the row to its new time: counted once, at its latest sync.
    states.resend(rows[0])
    db.session.commit()
    page = web.client.get("/").get_data(as_text=True)
    assert chart_totals(page, f"chart-hours-{practice.id}") == (3, 2)
    sync_through_states(rows[:1], hour - timedelta(minutes=5))
    page = web.client.get("/").get_data(as_text=True)
    assert chart_totals(page, f"chart-hours-{practice.id}") == (4, 2)
    assert rollup()[(practice.id, slot)] == (3, 0)
    assert rollup()[(practice.id, hour - timedelta(minutes=15))] == (1, 0)


def test_a_rolled_back_sync_leaves_the_rollup_unchanged(app, make_practice):
    practice = make_practice("alpha", time_zone="UTC")
    rows = [job(practice, i) for i in range(3)]
    db.session.add_all(rows)
    db.session.commit()
    sync_through_states(rows[:1], utcnow())
    before = rollup()
    for row in rows[1:]:
        states.claim(row, "worker.test")
        states.mark_synced(row, "x")
    db.session.add(attempt(rows[1], "error", utcnow()))
    db.session.flush()
    assert sum(s for s, _ in rollup().values()) == 3  # same transaction: already visible to it
    db.session.rollback()
    assert rollup() == before


def _mixed_data_set(practices: list[Practice], now: datetime) -> None:
    """Several practices and zones; synced by the state machine, bulk inserts and bulk updates; re-syncs,
    re-queues, failed and other attempts, attempts without a practice, deletions of rows and attempts."""
    rng = random.Random(6)
    horizon = 33 * 86400

    def moment() -> datetime:
        at = now - timedelta(seconds=rng.randrange(horizon))
        if rng.random() < 0.2:  # exactly on a slot boundary
            at = at.replace(minute=rng.choice((0, 15, 30, 45)), second=0, microsecond=0)
            at = min(at, now)
        return at

    for p in practices:
        rows = [job(p, i) for i in range(80)]
        db.session.add_all(rows)
        db.session.commit()
        for row in rows[:50]:  # one commit per sync, as a push does per batch
            sync_through_states([row], moment())
        for row in rows[50:60]:  # several syncs in one transaction
            states.claim(row, "worker.test")
            states.mark_synced(row, None, now=moment())
        db.session.commit()
        for row in rows[60:70]:
            states.claim(row, "worker.test")
            states.mark_error(row, "validation", "Xero refused it")
        for row in rows[:15]:  # re-syncs: sent again later
            states.resend(row)
        db.session.commit()
        for row in rows[:10]:
            sync_through_states([row], moment())
        # rows[10:15] stay pending after a resend: no longer counted as synced
        db.session.add_all(attempt(row, rng.choice(("error", "ambiguous", "error", "synced", "interrupted")),
                                   moment()) for row in rows for _ in range(rng.randrange(3)))
        db.session.add_all(attempt(row, "error", moment(), practice_id=None) for row in rows[70:73])
        db.session.commit()
        # Bulk statements (one statement, many rows): an import of synced rows, a batch update of times,
        # a bulk attempt insert, a bulk delete of some rows (their attempts cascade) and of some attempts.
        db.session.execute(insert(SyncJob), [
            {"practice_id": p.id, "kind": "payment", "cliniko_id": f"{p.slug}-bulk-{i}", "status": "synced",
             "synced_at": moment(), "amount": Decimal("1.00")} for i in range(40)])
        db.session.execute(insert(SyncAttempt), [
            {"job_id": rows[i % 80].id, "practice_id": p.id, "started_at": moment(), "outcome": "ambiguous"}
            for i in range(30)])
        db.session.execute(update(SyncJob).where(SyncJob.practice_id == p.id, SyncJob.kind == "payment",
                                                 SyncJob.cliniko_id.like("%-1_"))
                           .values(synced_at=SyncJob.synced_at - timedelta(hours=7, minutes=5)))
        db.session.execute(update(SyncJob).where(SyncJob.practice_id == p.id, SyncJob.kind == "payment",
                                                 SyncJob.cliniko_id.like("%-2_"))
                           .values(status="pending"))  # a bulk re-queue (as a fix would do)
        db.session.execute(update(SyncJob).where(SyncJob.practice_id == p.id, SyncJob.status == "synced")
                           .values(status_reason="touched"))  # changes nothing that counts
        db.session.execute(delete(SyncJob).where(SyncJob.id.in_([r.id for r in rows[40:45]] + [rows[75].id])))
        db.session.execute(delete(SyncAttempt).where(SyncAttempt.practice_id == p.id, SyncAttempt.id % 7 == 0))
        db.session.commit()
    db.session.expire_all()


@pytest.fixture
def mixed(make_practice, make_user):
    practices = [make_practice(slug, time_zone=zone) for slug, zone in ZONES.items()]
    make_user("admin@example.com")
    now = utcnow()
    _mixed_data_set(practices, now)
    return practices, now


def test_rollup_and_chart_numbers_equal_direct_counts_over_the_base_tables(app, web, mixed):
    practices, now = mixed
    expected = direct_slots()
    assert sum(s for s, _ in expected.values()) > 200 and sum(f for _, f in expected.values()) > 100
    assert rollup() == expected

    series = chart_series(practices, now=now)
    for p in practices:
        tz = ZoneInfo(p.time_zone)
        far = now + timedelta(days=1)
        for name, buckets in (("hours", hour_buckets(tz, now)), ("days", day_buckets(tz, now))):
            got = [(pt.synced, pt.failed) for pt in series[p.id][name]]
            want = [direct_count(p.id, start, end) for start, end in bucket_ranges(buckets, far)]
            assert got == want, (p.slug, name)
        assert len(series[p.id]["hours"]) == HOURS and len(series[p.id]["days"]) == DAYS
        assert sum(pt.synced for pt in series[p.id]["days"]) > 20

    # What a user reads on the rendered dashboard is the same.
    web.login("admin@example.com", PASSWORD)
    page = web.client.get("/").get_data(as_text=True)
    for p in practices:
        tz = ZoneInfo(p.time_zone)
        far = utcnow() + timedelta(days=1)
        assert chart_totals(page, f"chart-hours-{p.id}") == direct_count(p.id, hour_buckets(tz, utcnow())[0], far)
        assert chart_totals(page, f"chart-days-{p.id}") == direct_count(p.id, day_buckets(tz, utcnow())[0], far)


def _migration():
    path = ROOT / "migrations" / "versions" / "0005_activity_rollup.py"
    spec = importlib.util.spec_from_file_location("activity_rollup_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_backfill_builds_the_same_rollup(app, mixed):
    from_triggers = rollup()
    db.session.execute(delete(SyncActivity))
    db.session.execute(text(_migration().BACKFILL))
    db.session.commit()
    assert rollup() == from_triggers == direct_slots()


def test_deleting_a_practice_deletes_its_slots_and_keeps_the_others(app, mixed):
    practices, _ = mixed
    gone = practices[1]
    assert any(pid == gone.id for pid, _ in rollup())
    db.session.execute(delete(Practice).where(Practice.id == gone.id))  # cascades to jobs and attempts
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SyncActivity)
                             .where(SyncActivity.practice_id == gone.id)) == 0
    assert rollup() == direct_slots()


def test_truncating_the_job_tables_empties_the_charts(app, mixed):
    db.session.execute(text("TRUNCATE sync_jobs CASCADE"))
    db.session.commit()
    assert rollup() == {}


def test_slots_are_utc_and_timezone_aware(app, make_practice):
    practice = make_practice("kathmandu", time_zone="Asia/Kathmandu")
    row = job(practice, 1)
    db.session.add(row)
    db.session.commit()
    sync_through_states([row], datetime(2026, 11, 2, 3, 44, 59, tzinfo=UTC))
    [(pid, slot)] = rollup()
    assert slot == datetime(2026, 11, 2, 3, 30, tzinfo=UTC) and slot.utcoffset() == timedelta(0)


def test_the_repeated_hour_when_daylight_saving_ends_shows_both_occurrences(app, make_practice):
    practice = make_practice("sydney", time_zone="Australia/Sydney")
    rows = [job(practice, i) for i in range(3)]
    db.session.add_all(rows)
    db.session.commit()
    # 4 April 2027, 03:00 AEDT → 02:00 AEST: local 02:00–03:00 happens at 15:00Z and again at 16:00Z.
    sync_through_states(rows[:1], datetime(2027, 4, 3, 15, 30, tzinfo=UTC))
    sync_through_states(rows[1:2], datetime(2027, 4, 3, 16, 30, tzinfo=UTC))
    sync_through_states(rows[2:], datetime(2027, 4, 3, 17, 30, tzinfo=UTC))  # 03:30 AEST
    hours = chart_series([practice], now=datetime(2027, 4, 3, 18, 10, tzinfo=UTC))[practice.id]["hours"]
    by_label = {p.label: p.synced for p in hours[-4:]}
    assert by_label == {"01": 0, "02": 2, "03": 1, "04": 0}
    assert sum(p.synced for p in hours) == 3


def test_two_workers_writing_two_slots_in_opposite_orders_do_not_deadlock(app, make_practice):
    """Each worker's transaction records failed attempts in two slots, in opposite orders (a batch
    straddling a 15-minute boundary): the second waits for the first to commit, and both count."""
    import threading

    import psycopg

    from tests.conftest import TEST_DATABASE_URL

    practice = make_practice("alpha", time_zone="UTC")
    row = job(practice, 1, "failed")
    db.session.add(row)
    db.session.commit()
    early, late = datetime(2026, 11, 2, 10, 14, 59, tzinfo=UTC), datetime(2026, 11, 2, 10, 15, 1, tzinfo=UTC)
    insert_attempt = ("INSERT INTO sync_attempts (job_id, practice_id, started_at, outcome) "
                      "VALUES (%s, %s, %s, 'error')")
    errors: list[Exception] = []
    with psycopg.connect(TEST_DATABASE_URL) as first, psycopg.connect(TEST_DATABASE_URL) as second:
        first.execute("SET lock_timeout = '20s'")
        second.execute("SET lock_timeout = '20s'")
        first.execute(insert_attempt, (row.id, practice.id, early))

        def other_worker():
            try:
                second.execute(insert_attempt, (row.id, practice.id, late))  # waits for `first`
                second.execute(insert_attempt, (row.id, practice.id, early))
                second.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(1.5)
        assert thread.is_alive()  # blocked behind the first worker's transaction
        first.execute(insert_attempt, (row.id, practice.id, late))
        first.commit()
        thread.join(30)
    assert not errors and not thread.is_alive()
    assert rollup() == {(practice.id, datetime(2026, 11, 2, 10, 0, tzinfo=UTC)): (0, 2),
                        (practice.id, datetime(2026, 11, 2, 10, 15, tzinfo=UTC)): (0, 2)}
