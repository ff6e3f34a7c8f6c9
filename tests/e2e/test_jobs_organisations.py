"""In a real browser: the job list of a practice with two Xero organisations, filtered by organisation."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.test_organisations_routing import sign_in
from webapp.extensions import db
from webapp.models import SyncJob, XeroConnection

pytestmark = pytest.mark.e2e


def test_filter_the_job_list_by_organisation(page, live_server, make_user, make_practice):
    practice = make_practice("north", name="North Clinic")
    demo = XeroConnection(practice_id=practice.id, tenant_id="t-1", tenant_name="Demo Clinic Pty Ltd")
    harbour = XeroConnection(practice_id=practice.id, tenant_id="t-2", tenant_name="Harbourside Physio Pty Ltd")
    db.session.add_all([demo, harbour])
    db.session.flush()
    now = datetime.now(UTC)
    for i, connection in enumerate([demo] * 3 + [harbour] * 2 + [None]):
        db.session.add(SyncJob(practice_id=practice.id, connection_id=connection.id if connection else None,
                               kind="invoice", cliniko_id=str(500 + i), invoice_number=f"CLK-{500 + i}",
                               patient_name=f"Patient {i}", status="failed", updated_at=now - timedelta(minutes=i)))
    db.session.commit()
    make_user("admin@example.com")
    sign_in(page, "admin@example.com")

    page.goto(f"/jobs/?practice={practice.id}")
    table = page.get_by_test_id("jobs-table")
    expect(table.locator("tbody tr")).to_have_count(6)
    expect(table.get_by_role("columnheader", name="Organisation")).to_be_visible()
    expect(table.get_by_text("not routed yet")).to_have_count(1)

    page.get_by_label("Organisation").select_option(label="Harbourside Physio Pty Ltd")
    page.get_by_role("button", name="Apply").click()
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("[data-testid=organisation]")).to_have_text(["Harbourside Physio Pty Ltd"] * 2)
    expect(page.get_by_test_id("count-failed")).to_have_text("2")
    expect(page.get_by_label("Organisation")).to_have_value(str(harbour.id))
    # The CSV link exports the same filter.
    expect(page.get_by_test_id("export")).to_have_attribute("href", f"/jobs/export.csv?practice={practice.id}"
                                                                    f"&connection={harbour.id}")

    page.get_by_label("Organisation").select_option(label="Not routed yet")
    page.get_by_role("button", name="Apply").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("CLK-505")
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
