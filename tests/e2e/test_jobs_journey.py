"""In a real browser: a failed invoice from the list's "failed" tab to synced after a fix and a re-queue;
a support user re-queues one row but sees no bulk actions; a screenshot of the job list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.admin.test_jobs_support import (
    ACTIVE_ACCOUNT,
    ARCHIVED_ACCOUNT,
    archived_mapping,
    backfill,
    small_cliniko_app,
)
from tests.support.browser import signed_in as sign_in
from tests.support.engine import wire_clinic
from webapp.extensions import db
from webapp.models import SyncJob

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "jobs.png"


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with wire_clinic(app, web, make_user, make_practice, small_cliniko_app(), xero_sandbox) as clinic:
        mapping = archived_mapping(clinic)
        backfill(clinic)
        clinic.mapping = mapping
        yield clinic


def fixable_row(clinic) -> SyncJob:
    """A row failed only because of the archived account (it previews cleanly once that is fixed)."""
    from webapp.sync.preview import explain_invoice

    rows = [r for r in clinic.rows("invoice") if r.status == "failed" and ARCHIVED_ACCOUNT in r.failure_reason]
    clinic.mapping.account_code = ACTIVE_ACCOUNT
    db.session.flush()
    ok = [r for r in rows if explain_invoice(r).error is None]
    db.session.rollback()
    assert ok, "expected an invoice failing on the archived account alone"
    return ok[0]


def test_failed_invoice_fixed_and_requeued(clinic, page, make_user):
    from webapp.sync_cli import drain

    row = fixable_row(clinic)
    sign_in(page, "admin@example.com")
    page.get_by_role("link", name="Synchronised invoices").click()
    expect(page.get_by_test_id("bulk-actions")).to_be_visible()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.screenshot(path=str(SCREENSHOT), full_page=False)

    page.get_by_test_id("tab-failed").click()
    expect(page.get_by_test_id("tab-failed")).to_have_class(re.compile("active"))
    page.get_by_role("link", name=row.invoice_number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/jobs/{row.id}/$"))
    expect(page.get_by_test_id("job-state")).to_have_text("failed")
    expect(page.get_by_test_id("failure-reason")).to_contain_text(ARCHIVED_ACCOUNT)
    expect(page.get_by_test_id("failure-reason")).to_contain_text("archived")
    expect(page.get_by_test_id("suggested-fix")).not_to_be_empty()

    # The fix happens on the Mappings screen; here, change the row directly.
    clinic.mapping.account_code = ACTIVE_ACCOUNT
    db.session.commit()
    page.reload()
    expect(page.get_by_test_id("preview-reasons")).to_contain_text(ACTIVE_ACCOUNT)

    page.get_by_role("button", name="Re-queue").click()
    expect(page.locator(".alert-info")).to_contain_text("Re-queued")
    expect(page.get_by_test_id("job-state")).to_have_text("pending")
    drain(clinic.practice.id, 30)
    page.reload()
    expect(page.get_by_test_id("job-state")).to_have_text("synced")
    expect(page.get_by_test_id("xero-link")).to_be_visible()
    expect(page.get_by_test_id("payload-sent")).to_contain_text(ACTIVE_ACCOUNT)
    assert not [e for e in page.console_errors if "Content Security Policy" in e]


def test_support_requeues_one_row_without_bulk_actions(clinic, page, make_user):
    make_user("support@example.com", role="support")
    row = db.session.scalars(select(SyncJob).where(SyncJob.practice_id == clinic.practice.id,
                                                   SyncJob.status == "failed").order_by(SyncJob.id)).first()
    sign_in(page, "support@example.com")
    page.goto("/jobs/?state=failed")
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    expect(page.get_by_test_id("bulk-actions")).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Re-queue selected")).to_have_count(0)
    page.locator(f'[data-job-id="{row.id}"] a').first.click()
    expect(page.get_by_role("button", name="Ignore")).to_have_count(0)
    page.get_by_role("button", name="Re-queue").click()
    expect(page.locator(".alert-info")).to_contain_text("Re-queued")
    expect(page.get_by_test_id("job-state")).to_have_text("pending")
    # Bulk URLs answer 403 even when typed in.
    assert page.goto("/jobs/requeue-all").status == 403
