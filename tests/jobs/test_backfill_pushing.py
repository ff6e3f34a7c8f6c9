"""A backfill pushes while it discovers. Cliniko's rate limit makes discovery the slower side, so a push that
has sent everything found so far ends; every page queues a push again, and the next page's rows go to Xero
without waiting for the last page (before, only the first page did: a 10,000-invoice backfill sent nothing
for the 100 s discovery took, 1.5 of Xero's minutes lost)."""

from datetime import date, timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from jobs import sync as sync_jobs
from jobs.queues import queue
from tests.support.engine import audit_xero_against_cliniko, wire_clinic
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
    queue("backfill").empty()  # this test runs the discovery job itself, below
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
    # Every page's invoices were in Xero before the next page was read, not only the first page's.
    assert all(later > earlier for earlier, later in zip(sent, sent[1:], strict=False)), after_page
    SimpleWorker([queue("backfill")], connection=redis_conn).work(burst=True)  # the push queued at the end
    counts = audit_xero_against_cliniko(clinic)
    assert counts["invoices"] == sent[-1] > 0  # the last page went with its own push; the final one found nothing
    due = db.session.scalar(select(func.count()).where(
        SyncJob.practice_id == clinic.practice.id, SyncJob.status.in_(("pending", "retrying", "running"))))
    assert due == 0
