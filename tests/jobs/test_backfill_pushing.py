"""A backfill pushes while it discovers. Cliniko's rate limit makes discovery the slower side, so a push that
has sent everything found so far ends; every page queues a push again, and the next page's rows go to Xero
without waiting for the last page (before, only the first page did: a 10,000-invoice backfill sent nothing
for the 100 s discovery took, 1.5 of Xero's minutes lost)."""

from datetime import date, timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import event, func, select

from jobs import sync as sync_jobs
from jobs.queues import QUEUE_NAMES, queue
from tests.support.engine import audit_xero_against_cliniko, invoice_calls, wire_clinic
from webapp.extensions import db
from webapp.models import SyncJob
from webapp.sync import backfill as backfills


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=5, patients=60, invoices=420),
                     xero_sandbox) as clinic:
        yield clinic


def in_xero(clinic) -> int:
    return sum(1 for i in clinic.xero_org()["invoices"] if i["Type"] == "ACCREC")


def test_each_page_is_pushed_while_discovery_goes_on(clinic, redis_conn, monkeypatch):
    since = date.today() - timedelta(days=400)
    row = backfills.start(clinic.practice, since, None)
    # Discovery has its own queue, ahead of backfill pushes (workers drain the queues in QUEUE_NAMES order).
    assert (queue("discovery").job_ids, queue("backfill").count) == ([f"backfill-{row.id}"], 0)
    assert QUEUE_NAMES.index("discovery") < QUEUE_NAMES.index("backfill")
    queue("discovery").empty()  # this test runs the discovery job itself, below
    after_page: list[tuple[int, int]] = []
    discover = backfills.run

    def run_watched(backfill_id, on_page=None, **kwargs):
        def page(backfill):
            on_page(backfill)  # the job's own callback
            # A second worker, faster than discovery: it runs whatever push is queued now, then idles.
            SimpleWorker([queue("backfill")], connection=redis_conn).work(burst=True)
            after_page.append((backfill.discovered, in_xero(clinic)))

        return discover(backfill_id, on_page=page, **kwargs)

    monkeypatch.setattr(backfills, "run", run_watched)
    assert sync_jobs.run_backfill(row.id) == {"state": "done"}

    assert len(after_page) >= 3, after_page  # about 400 invoices in the period, discovery pages of 200
    sent = [count for _discovered, count in after_page]
    # Every full page's invoices were in Xero before the next page was read, not only the first page's. While
    # discovery goes on only full batches of 50 leave; the last page's few (6 here) go with the push queued
    # when discovery ends, in partial batches.
    assert all(later > earlier for earlier, later in zip(sent, sent[1:-1], strict=False)), after_page
    SimpleWorker([queue("backfill")], connection=redis_conn).work(burst=True)  # the push queued at the end
    counts = audit_xero_against_cliniko(clinic)
    assert counts["invoices"] > sent[-2] > sent[0] > 0
    partial = [n for n in invoice_calls(clinic) if n < 50]
    assert len(partial) <= 1, partial  # at most the very last invoice call is not full
    due = db.session.scalar(select(func.count()).where(
        SyncJob.practice_id == clinic.practice.id, SyncJob.status.in_(("pending", "retrying", "running"))))
    assert due == 0


def test_partial_batches_wait_while_discovery_goes_on_but_live_rows_do_not(clinic):
    from webapp.models import Backfill
    from webapp.sync.push import HELD_FOR_BATCH, push

    row = backfills.start(clinic.practice, date.today() - timedelta(days=400), None)
    queue("discovery").empty()
    backfills.run(row.id)
    backfill = db.session.get(Backfill, row.id)
    backfill.state = "running"  # as if more pages were still to be read
    db.session.commit()

    held = push(clinic.practice.id, "worker-a", time_budget=60)
    assert held.held > 0 and HELD_FOR_BATCH in held.stopped
    assert held.next_due_at is None  # the next page, or the end of discovery, queues the next push
    waiting = [r for r in clinic.rows() if r.status_reason == HELD_FOR_BATCH]
    assert waiting and all(r.status == "pending" and r.attempts == 0 for r in waiting)
    assert all(n == 50 for n in invoice_calls(clinic)), invoice_calls(clinic)

    live = [r for r in waiting if r.kind == "invoice"][:3]
    for r in live:
        r.priority = 0  # found by the regular poll meanwhile: a live invoice is not held for a backfill
    db.session.commit()
    push(clinic.practice.id, "worker-a", time_budget=60)
    assert {r.status for r in clinic.rows("invoice") if r.id in {x.id for x in live}} == {"synced"}

    backfill = db.session.get(Backfill, row.id)
    backfill.state = "done"
    db.session.commit()
    while push(clinic.practice.id, "worker-a", time_budget=60).synced:
        pass
    audit_xero_against_cliniko(clinic)
    assert not [r for r in clinic.rows() if r.status in ("pending", "running", "retrying")]


def test_the_planner_statistics_follow_the_table_as_a_backfill_grows(clinic, monkeypatch):
    """ANALYZE after pages 1, 2, 4, 8, … and at the end: a table filled in one go is otherwise planned as
    empty until autovacuum's next nap, or for good where autovacuum is off."""
    row = backfills.start(clinic.practice, date.today() - timedelta(days=400), None)
    queue("discovery").empty()
    moments: list[str] = []

    def listen(conn, cursor, statement, *args):
        if statement.startswith("ANALYZE"):
            moments.append(statement)

    real_record_page = backfills.record_page
    monkeypatch.setattr(backfills, "record_page", lambda *a, **k: (moments.append("page"), real_record_page(*a, **k)))
    event.listen(db.engine, "after_cursor_execute", listen)
    try:
        backfills.run(row.id)
    finally:
        event.remove(db.engine, "after_cursor_execute", listen)
    analyze = "ANALYZE (SKIP_LOCKED) sync_jobs"
    assert moments == ["page", analyze, "page", analyze, "page", analyze], moments  # 3 pages: after 1, 2, end

