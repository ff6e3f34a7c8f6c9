"""The Workflow settings (issue 8): invoice source, appointment conditions, contact timing, dry run — saved
through the Settings screen, validated, audited; a changed condition re-checks appointment rows."""

from __future__ import annotations

import pytest

from tests.admin.test_settings import audits, ids, post_settings, small_clinic, stored
from webapp.extensions import db
from webapp.models import SyncJob
from webapp.practice_settings import reevaluate_filters


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with small_clinic(app, web, make_user, make_practice, xero_sandbox) as clinic:
        yield clinic


def test_workflow_settings_are_saved_with_catalogue_choices(clinic, web):
    page = web.client.get(f"/practices/{clinic.practice.id}/settings/").get_data(as_text=True)
    assert 'data-testid="group-workflow"' in page
    assert "Completed appointments" in page and "Initial Consultation" in page  # a type from the catalogue
    types = ids(clinic.practice, "appointment_type")
    businesses = ids(clinic.practice, "business")
    response = post_settings(web, clinic.practice, {
        "invoice_source": "appointments", "appointment_completion": "ended",
        "only_appointment_types": types[:3], "claim_appointment_types": [types[3]],
        "only_businesses": [businesses[0]], "dry_run": "y", "contact_timing": "first_booking"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    saved = stored(clinic.practice)
    assert saved["invoice_source"] == "appointments"
    assert saved["appointment_completion"] == "ended"
    assert saved["only_appointment_types"] == types[:3]
    assert saved["claim_appointment_types"] == [types[3]]
    assert saved["only_businesses"] == [businesses[0]]
    assert saved["dry_run"] is True and saved["contact_timing"] == "first_booking"
    changed = audits("practice.settings")[-1].details["changed"]
    assert changed["invoice_source"] == ["invoices", "appointments"]


def test_a_bad_workflow_value_is_explained_and_nothing_is_saved(clinic, web):
    before = stored(clinic.practice)
    response = post_settings(web, clinic.practice, {"invoice_source": "emails", "contact_timing": "never"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert 'data-testid="error-invoice_source"' in text and "must be one of" in text
    assert stored(clinic.practice) == before


def test_support_users_see_the_workflow_read_only(clinic, web, make_user):
    post_settings(web, clinic.practice, {"invoice_source": "appointments", "dry_run": "y"})
    make_user("support@example.com", role="support")
    web.client.post("/logout", data={"csrf_token": web.csrf_token("/")})
    web.login("support@example.com", "correct horse battery")
    page = web.client.get(f"/practices/{clinic.practice.id}/settings/").get_data(as_text=True)
    assert 'data-testid="read-only"' in page
    assert 'data-testid="value-invoice_source">appointments' in page.replace("\n", "").replace("  ", "")
    response = post_settings(web, clinic.practice, {"invoice_source": "invoices"})
    assert response.status_code == 403
    assert stored(clinic.practice)["invoice_source"] == "appointments"


def test_changing_a_condition_rechecks_appointment_rows_not_yet_in_xero(clinic, web):
    types = ids(clinic.practice, "appointment_type")
    source = {"appointment": {"id": "77", "appointment_type_id": types[0], "business_id": None,
                              "patient_id": "5", "patient_arrived": True},
              "appointment_type": {"id": types[0], "name": "Initial Consultation"},
              "invoice": {"id": "77", "number": "A77", "issue_date": "2026-11-20", "patient_id": "5",
                          "total_amount": "120.0", "status": None},
              "items": [{"id": "77-1", "billable_item_id": None, "name": "Initial Consultation", "quantity": "1",
                         "unit_price": "120.0", "tax_rate": "0", "total_including_tax": "120.0"}],
              "patient": {"id": "5", "first_name": "Ann", "last_name": "Lee"}}
    row = SyncJob(practice_id=clinic.practice.id, kind="appointment", cliniko_id="77", invoice_number="A77",
                  status="pending", source=source, parent_cliniko_id="5")
    db.session.add(row)
    db.session.commit()
    post_settings(web, clinic.practice, {"invoice_source": "appointments", "claim_appointment_types": [types[0]]})
    reevaluate_filters(clinic.practice.id)  # what the background job runs
    db.session.expire_all()
    row = db.session.get(SyncJob, row.id)
    assert row.status == "skipped" and "billed as a claim" in row.status_reason
    post_settings(web, clinic.practice, {"invoice_source": "appointments", "claim_appointment_types": []})
    reevaluate_filters(clinic.practice.id)
    db.session.expire_all()
    assert db.session.get(SyncJob, row.id).status == "pending"
