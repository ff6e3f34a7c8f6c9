"""Reconciliation: none for a clean sync; injected differences (voided or payment removed in Xero, invoices
deleted in Cliniko after the sync) found with links to their rows; too-large ranges said so; scoping."""

import uuid
from datetime import date, timedelta

import pytest

from tests.support.engine import PASSWORD, wire_clinic
from webapp.extensions import db
from webapp.models import SyncJob
from webapp.sync import states
from webapp.sync.reconciliation import reconcile

FROM, TO = date.today() - timedelta(days=400), date.today()


@pytest.fixture
def synced(app, web, make_user, make_practice, xero_app, xero_sandbox):
    """A small clinic backfilled into sandbox Xero; failed rows ignored on purpose, so the sync is clean."""
    from sandbox.cliniko.app import create_app
    from webapp.sync.backfill import run, start
    from webapp.sync_cli import drain

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=7, patients=12, invoices=30),
                     xero_sandbox) as clinic:
        backfill = start(clinic.practice, FROM, None)
        run(backfill.id)
        drain(clinic.practice.id, timeout=60)
        for row in clinic.rows():
            if row.status == "failed":
                states.ignore(row, "known problem (test)")
        db.session.commit()
        yield clinic


def xero(clinic):
    from webapp.practices import active_connection
    from webapp.xero.connections import client_for

    return client_for(active_connection(clinic.practice))


def test_clean_sync_shows_no_differences(synced, web):
    report = reconcile(synced.practice, FROM, TO)
    assert report.clean, [(d.kind, d.message) for d in report.differences]
    assert report.cliniko.count == report.xero.count + report.excluded > 0
    assert report.xero.paid_count > 0 and report.cliniko.paid >= report.xero.paid
    html = web.client.get(f"/reconcile/?practice={synced.practice.id}&date_from={FROM}&date_to={TO}&run=1")
    assert html.status_code == 200
    assert "No differences between Cliniko and Xero" in html.get_data(as_text=True)


def test_injected_differences_are_listed_with_links(synced, web):
    invoices = [r for r in synced.rows("invoice") if r.status == "synced"]
    paid = {r.cliniko_id: r for r in synced.rows("payment") if r.status == "synced"}
    unpaid = next(r for r in invoices if r.cliniko_id not in paid)
    paid_invoice = next(r for r in invoices if r.cliniko_id in paid)
    client = xero(synced)
    client.void_invoice(unpaid.xero_id, str(uuid.uuid4()))
    client.delete_payment(paid[paid_invoice.cliniko_id].xero_id, str(uuid.uuid4()))
    deleted = synced.cliniko("POST", "activity", json={"deletes": 3})["deletes"]
    live_deleted = {r.cliniko_id for r in invoices if r.cliniko_id in deleted
                    and r.cliniko_id not in (unpaid.cliniko_id, paid_invoice.cliniko_id)}

    report = reconcile(synced.practice, FROM, TO)
    kinds = {(d.kind, d.cliniko_id): d for d in report.differences}
    assert ("voided_in_xero", unpaid.cliniko_id) in kinds
    assert kinds[("voided_in_xero", unpaid.cliniko_id)].job_id == unpaid.id
    assert ("not_paid_in_xero", paid_invoice.cliniko_id) in kinds
    assert kinds[("not_paid_in_xero", paid_invoice.cliniko_id)].job_id == paid[paid_invoice.cliniko_id].id
    for cid in live_deleted:
        assert ("not_voided", cid) in kinds
    assert {k for k, _ in kinds} <= {"voided_in_xero", "not_paid_in_xero", "not_voided"}

    html = web.client.get(f"/reconcile/?practice={synced.practice.id}&date_from={FROM}&date_to={TO}&run=1")
    text = html.get_data(as_text=True)
    assert f'href="/jobs/{unpaid.id}/"' in text and f'href="/jobs/{paid[paid_invoice.cliniko_id].id}/"' in text
    assert "Voided or deleted in Xero, live in Cliniko" in text and "Paid in Cliniko, not paid in Xero" in text


def test_too_large_range_is_refused_in_words(synced, web):
    report = reconcile(synced.practice, FROM, TO, limit=5)
    assert report.too_large and not report.differences
    from webapp.sync import reconciliation

    reconciliation.MAX_INVOICES, saved = 5, reconciliation.MAX_INVOICES
    try:
        text = web.client.get(f"/reconcile/?practice={synced.practice.id}&date_from={FROM}&date_to={TO}&run=1"
                              ).get_data(as_text=True)
    finally:
        reconciliation.MAX_INVOICES = saved
    assert "More than 5 invoices were issued in this range" in text


def test_scoped_user_cannot_reconcile_another_practice(synced, app, make_user, make_practice):
    from tests.conftest import CsrfClient

    other = make_practice("other")
    make_user("support@example.com", role="support", practice_slug="other")
    support = CsrfClient(app.test_client())
    support.login("support@example.com", PASSWORD)
    response = support.client.get(f"/reconcile/?practice={synced.practice.id}&run=1")
    assert response.status_code == 404
    page = support.client.get("/reconcile/").get_data(as_text=True)
    assert synced.practice.name not in page and other.name in page
    assert db.session.query(SyncJob).count() > 0
