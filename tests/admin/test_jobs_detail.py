"""The job detail page: what it is, why it failed, the attempt timeline, the payload and the preview."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.admin.test_jobs_support import (
    ARCHIVED_ACCOUNT,
    PASSWORD,
    archived_mapping,
    backfill,
    make_jobs,
    small_cliniko_app,
)
from tests.support.engine import wire_clinic
from webapp.extensions import db
from webapp.models import SyncAttempt, SyncJob, utcnow


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with wire_clinic(app, web, make_user, make_practice, small_cliniko_app(), xero_sandbox) as clinic:
        archived_mapping(clinic)
        backfill(clinic)
        yield clinic


def test_detail_of_failed_synced_and_pending_rows(clinic, web):
    from webapp.sync.preview import explain_invoice

    rows = clinic.rows("invoice")
    failed = next(r for r in rows if r.status == "failed" and r.error_category == "mapping")
    synced = next(r for r in rows if r.status == "synced")

    html = web.client.get(f"/jobs/{failed.id}/").get_data(as_text=True)
    assert failed.invoice_number in html and "failed" in html
    assert ARCHIVED_ACCOUNT in html and "archived" in html  # the reason
    assert 'data-testid="suggested-fix"' in html
    assert f"https://au1.cliniko.com/invoices/{failed.cliniko_id}" in html
    assert 'data-testid="attempt"' in html  # the mapping failure is in the timeline
    # Never sent: the preview says why it cannot be sent, and how to fix it.
    assert 'data-testid="preview-error"' in html and 'data-testid="payload-sent"' not in html

    html = web.client.get(f"/jobs/{synced.id}/").get_data(as_text=True)
    assert f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={synced.xero_id}" in html
    attempt = db.session.scalars(select(SyncAttempt).where(SyncAttempt.job_id == synced.id)).first()
    assert attempt.http_status == 200 and attempt.idempotency_key
    assert attempt.idempotency_key in html and str(attempt.http_status) in html
    assert 'data-testid="payload-sent"' in html and "&#34;InvoiceNumber&#34;" in html

    # Fix the mapping: the preview now shows the payload and the rule behind each choice.
    from webapp.models import Mapping

    mapping = db.session.scalars(select(Mapping).where(Mapping.account_code == ARCHIVED_ACCOUNT)).one()
    mapping.account_code = "260"
    db.session.commit()
    preview = explain_invoice(db.session.get(SyncJob, failed.id))
    assert preview.error is None and preview.payload["InvoiceNumber"] == failed.invoice_number
    rules = {(r["field"], r["value"]): r["rule"] for r in preview.reasons}
    assert "Standard Consultation" in rules[("AccountCode", "260")]
    assert any(field == "TaxType" for field, _ in rules)
    html = web.client.get(f"/jobs/{failed.id}/").get_data(as_text=True)
    assert 'data-testid="preview-reasons"' in html and "Standard Consultation" in html
    assert "&#34;AccountCode&#34;: &#34;260&#34;" in html or '"AccountCode": "260"' in html


def test_error_detail_and_timeline_from_xero(app, web, make_user, make_practice):
    practice = make_practice("north")
    [job_id] = make_jobs(practice, 1, status="failed", error_category="validation")
    row = db.session.get(SyncJob, job_id)
    row.failure_reason = "Xero refused the invoice: the account is locked."
    row.suggested_fix = "Move the lock date in Xero, then re-queue the row."
    row.error_detail = {"http_status": 400, "request_id": "req-abc-123",
                        "validation_errors": ["<b>Lock date</b> is 2024-01-01"]}
    started = utcnow() - timedelta(minutes=5)
    db.session.add_all([
        SyncAttempt(job_id=job_id, started_at=started, finished_at=started, outcome="error", http_status=503,
                    error="Service unavailable", duration_ms=812, xero_request_id="req-first",
                    idempotency_key="key-first"),
        SyncAttempt(job_id=job_id, started_at=started + timedelta(minutes=1), outcome="error", http_status=400,
                    error="Lock date is 2024-01-01", duration_ms=95, xero_request_id="req-abc-123",
                    idempotency_key="key-second", request_body={"InvoiceNumber": "INV-00000"}),
    ])
    db.session.commit()
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    html = web.client.get(f"/jobs/{job_id}/").get_data(as_text=True)
    for text in ("HTTP status", "400", "req-abc-123", "&lt;b&gt;Lock date&lt;/b&gt;", "Move the lock date",
                 "812 ms", "key-first", "key-second", "Service unavailable"):
        assert text in html, text
    assert html.index("req-first") < html.index("key-second")  # oldest attempt first
    assert 'data-testid="payload-sent"' in html and "INV-00000" in html
    assert web.client.get("/jobs/999999/").status_code == 404
