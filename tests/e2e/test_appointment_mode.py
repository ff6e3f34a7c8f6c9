"""In a real browser: switch a practice to appointment mode with dry run on, see a completed appointment's
payload without anything sent, mark a claim type, then turn dry run off and see the visit in Xero."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests.support.browser import signed_in as sign_in
from tests.support.engine import wire_clinic
from webapp.extensions import db
from webapp.models import Practice
from webapp.sync.discovery import poll
from webapp.sync_cli import drain

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=5, patients=20, invoices=30), xero_sandbox) as clinic:
        now = datetime.fromisoformat(clinic.cliniko("GET", "clock")["now"].replace("Z", "+00:00")).isoformat()
        practice = db.session.get(Practice, clinic.practice.id)
        practice.poll_cursors = {"invoices": now, "individual_appointments": now}
        db.session.commit()
        yield clinic


def test_switch_to_appointment_mode_try_it_in_dry_run_then_turn_it_on(clinic, page):
    sign_in(page, "admin@example.com")
    page.goto(f"/practices/{clinic.practice.id}/settings/")
    workflow = page.get_by_test_id("group-workflow")
    expect(workflow).to_be_visible()
    workflow.get_by_label("Xero invoices come from").select_option(label="Completed appointments")
    workflow.get_by_label("Invoice only these appointment types").select_option(
        label=["Initial Consultation", "Standard Consultation", "Remedial Massage"])
    workflow.get_by_label("Appointment types billed as claims (never invoiced)").select_option(
        label=["Remedial Massage"])
    workflow.get_by_label("Dry run: build and show what would be sent, send nothing").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert").first).to_contain_text("Saved")
    expect(page.get_by_label("Xero invoices come from")).to_have_value("appointments")
    page.goto("/")
    expect(page.get_by_test_id("dry-run")).to_have_text("dry run: nothing is sent")
    expect(page.get_by_test_id("invoice-source")).to_contain_text("completed appointments")

    # A dummy visit: the patient arrives in Cliniko; the next poll builds its invoice but sends nothing.
    arrived = clinic.cliniko("POST", "activity", json={"arrivals": 4})["arrivals"]
    poll(clinic.practice.id)
    rows = [r for r in clinic.rows("appointment") if r.cliniko_id in arrived]
    assert rows
    assert not clinic.xero_org()["invoices"]
    visit = next(r for r in rows if r.status == "pending")
    page.goto(f"/jobs/{visit.id}/")
    expect(page.get_by_test_id("job-state")).to_have_text("pending")
    expect(page.get_by_test_id("preview-payload")).to_contain_text(f"A{visit.cliniko_id}")
    for row in rows:
        if row.status == "skipped":  # a claim type or a type not invoiced: the reason is on the row
            page.goto(f"/jobs/{row.id}/")
            expect(page.get_by_test_id("failure")).to_contain_text(re.compile("claim|not one of the types"))

    # Turn it on: what was discovered meanwhile goes to Xero.
    page.goto(f"/practices/{clinic.practice.id}/settings/")
    page.get_by_label("Dry run: build and show what would be sent, send nothing").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert").first).to_contain_text("Saved")
    db.session.expire_all()  # the web server thread saved the settings
    assert db.session.get(Practice, clinic.practice.id).settings["dry_run"] is False
    drain(clinic.practice.id, timeout=120)
    page.goto(f"/jobs/{visit.id}/")
    expect(page.get_by_test_id("job-state")).to_have_text("synced")
    numbers = {i["InvoiceNumber"] for i in clinic.xero_org()["invoices"]}
    assert f"A{visit.cliniko_id}" in numbers
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
