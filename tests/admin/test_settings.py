"""The practice Settings screen: every setting saved and validated through PracticeSettings, audit,
re-queue of fixable failures, filter re-check, roles, scope and CSRF."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.support.engine import PASSWORD, wire_clinic
from webapp.extensions import db
from webapp.models import AuditEntry, ClinikoRecord, Practice, SyncJob

ALL_VALID = {
    "invoice_status": "DRAFT",
    "invoice_number_prefix": "CL-",
    "reference_template": "Cliniko {number} · {practitioner}",
    "line_description_template": "{item} ({code})",
    "line_amount_types": "Inclusive",
    "due_days": "14",
    "contact_number_prefix": "PT-",
    "contact_details": "full",
    "sync_from": "2024-07-01",
    "skip_zero_total": "y",
    "only_paid": "y",
    "closed_policy": "void",
    "rounding_tolerance": "0.10",
    "time_zone": "Australia/Perth",
}


def small_clinic(app, web, make_user, make_practice, xero_sandbox):
    """A practice connected to sandbox Xero with its Cliniko catalogue loaded; admin signed in."""
    from sandbox.cliniko.app import create_app

    return wire_clinic(app, web, make_user, make_practice,
                       create_app(api_key="sandbox-key-au1", seed=3, patients=12, invoices=40),
                       xero_sandbox, enable=False)


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with small_clinic(app, web, make_user, make_practice, xero_sandbox) as clinic:
        yield clinic


def ids(practice, kind):
    return [r.cliniko_id for r in db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == kind).order_by(ClinikoRecord.id))]


def post_settings(web, practice, data, token=True):
    url = f"/practices/{practice.id}/settings/"
    form = dict(data)
    if token:
        form["csrf_token"] = web.csrf_token(url)
    return web.client.post(url, data=form)


def stored(practice) -> dict:
    db.session.expire_all()
    return dict(db.session.get(Practice, practice.id).settings or {})


def audits(action):
    db.session.expire_all()
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def failed_row(practice, category="mapping", cliniko_id="9001") -> SyncJob:
    row = SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=cliniko_id, invoice_number=cliniko_id,
                  status="failed", error_category=category, failure_reason="No Xero account for 'X'",
                  attempts=1)
    db.session.add(row)
    db.session.commit()
    return row


def test_page_shows_every_setting_grouped_with_catalogue_choices(clinic, web):
    page = web.client.get(f"/practices/{clinic.practice.id}/settings/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for group in ("invoices", "contacts", "filters", "policies"):
        assert f'data-testid="group-{group}"' in text
    from webapp.practice_settings import MANAGED

    for name in MANAGED:
        assert f'name="{name}"' in text, name
    item = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == clinic.practice.id, ClinikoRecord.kind == "billable_item")).first()
    assert re.search(rf'<option value="{item.cliniko_id}">{re.escape(html.escape(item.name))}', text)
    assert 'value="AUTHORISED" selected' in text.replace("selected=\"selected\"", "selected") or \
        re.search(r'<option selected value="AUTHORISED">|<option value="AUTHORISED" selected', text)


def test_save_every_setting_keeps_other_keys_audits_and_says_so(clinic, web):
    practice = clinic.practice
    items, products = ids(practice, "billable_item")[:2], ids(practice, "product")[:1]
    businesses, practitioners = ids(practice, "business")[:1], ids(practice, "practitioner")[:1]
    data = dict(ALL_VALID, exclude_billable_items=items, exclude_products=products,
                exclude_businesses=businesses, exclude_practitioners=practitioners)
    response = post_settings(web, practice, data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    settings = stored(practice)
    assert settings["sales_account"] == "200" and settings["payment_account"] == "090"  # kept
    assert settings["invoice_status"] == "DRAFT"
    assert settings["invoice_number_prefix"] == "CL-"
    assert settings["reference_template"] == "Cliniko {number} · {practitioner}"
    assert settings["line_description_template"] == "{item} ({code})"
    assert settings["line_amount_types"] == "Inclusive"
    assert settings["due_days"] == 14
    assert settings["contact_number_prefix"] == "PT-"
    assert settings["contact_details"] == "full"
    assert settings["sync_from"] == "2024-07-01"
    assert settings["exclude_billable_items"] == items
    assert settings["exclude_products"] == products
    assert settings["exclude_businesses"] == businesses
    assert settings["exclude_practitioners"] == practitioners
    assert settings["skip_zero_total"] is True and settings["only_paid"] is True
    assert settings["closed_policy"] == "void"
    assert settings["rounding_tolerance"] == "0.10"
    assert settings["time_zone"] == "Australia/Perth"
    assert db.session.get(Practice, practice.id).time_zone == "Australia/Perth"
    # The sync reads them back as they were meant.
    from webapp.sync.context import load

    ctx = load(db.session.get(Practice, practice.id))
    assert ctx.settings.due_days == 14 and ctx.settings.sync_from == date(2024, 7, 1)
    assert ctx.settings.time_zone == "Australia/Perth"

    entry = audits("practice.settings")[-1]
    assert entry.actor == "admin@example.com" and entry.practice_id == practice.id
    assert entry.details["changed"]["due_days"] == [0, 14]
    assert entry.details["changed"]["invoice_status"] == ["AUTHORISED", "DRAFT"]
    assert "sales_account" not in entry.details["changed"]
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved. No failed invoices needed re-queueing." in page
    assert "re-checked against the new filters" in page

    # Unchecking the boxes and clearing the lists saves false / empty.
    response = post_settings(web, practice, dict(ALL_VALID, skip_zero_total="", only_paid=""))
    settings = stored(practice)
    assert settings["skip_zero_total"] is False and settings["only_paid"] is False
    assert settings["exclude_billable_items"] == []

    # Saving the same values again changes nothing and writes no audit entry.
    count = len(audits("practice.settings"))
    response = post_settings(web, practice, dict(ALL_VALID, skip_zero_total="", only_paid=""))
    assert "Nothing changed." in web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(audits("practice.settings")) == count


BAD_VALUES = [
    ("invoice_status", "PAID", "must be one of AUTHORISED, DRAFT"),
    ("invoice_number_prefix", "X" * 51, "too long"),
    ("reference_template", "Cliniko {invoice}", "unknown placeholder {invoice}"),
    ("reference_template", "Cliniko {number", "unbalanced braces"),
    ("line_description_template", "{patient}", "unknown placeholder {patient}"),
    ("line_amount_types", "NoTax", "must be one of Exclusive, Inclusive"),
    ("due_days", "400", "between 0 and 365"),
    ("due_days", "two", "whole number"),
    ("contact_number_prefix", "P" * 31, "too long"),
    ("contact_details", "everything", "must be one of email, full, name"),
    ("sync_from", "2024-13-40", "must be a date (YYYY-MM-DD)"),
    ("closed_policy", "delete", "must be one of ignore, void"),
    ("rounding_tolerance", "2", "between 0 and 1.00"),
    ("rounding_tolerance", "abc", "between 0 and 1.00"),
    ("time_zone", "Mars/Olympus", "IANA time zone"),
]


def test_bad_values_are_explained_next_to_their_field_and_nothing_is_saved(clinic, web):
    before = stored(clinic.practice)
    for name, value, message in BAD_VALUES:
        response = post_settings(web, clinic.practice, dict(ALL_VALID, **{name: value}))
        assert response.status_code == 400, name
        text = html.unescape(response.get_data(as_text=True))
        error = re.search(rf'data-testid="error-{name}">([^<]*)<', text)
        assert error and message in error.group(1), (name, text[text.find("invalid-feedback"):][:500])
        assert "Nothing was saved" in text
        assert stored(clinic.practice) == before
    # Several bad values at once: each is explained.
    response = post_settings(web, clinic.practice, dict(ALL_VALID, due_days="-1", time_zone="Nowhere"))
    text = response.get_data(as_text=True)
    assert 'data-testid="error-due_days"' in text and 'data-testid="error-time_zone"' in text
    assert stored(clinic.practice) == before
    assert audits("practice.settings") == []


def test_exclusion_outside_the_catalogue_is_refused(clinic, web):
    response = post_settings(web, clinic.practice, dict(ALL_VALID, exclude_products=["999999"]))
    assert response.status_code == 400
    assert "exclude_products" not in stored(clinic.practice)


def test_saving_requeues_fixable_failures_and_shows_the_count(clinic, web, redis_conn):
    practice = clinic.practice
    fixable = [failed_row(practice, "mapping", "9001"), failed_row(practice, "totals", "9002"),
               failed_row(practice, "mapping", "9003")]
    other = failed_row(practice, "validation", "9004")
    response = post_settings(web, practice, dict(ALL_VALID, rounding_tolerance="0.07"))
    assert response.status_code == 302
    db.session.expire_all()
    assert [db.session.get(SyncJob, r.id).status for r in fixable] == ["pending"] * 3
    assert db.session.get(SyncJob, other.id).status == "failed"
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved. 3 failed invoices re-queued." in page
    assert audits("requeue.auto")[0].details["count"] == 3
    from jobs.queues import queue

    assert any(j.func_name == "jobs.sync.push_practice" for j in queue("live", redis_conn).get_jobs())


def test_filter_change_rechecks_skipped_rows(clinic, web, redis_conn):
    """Excluding a practitioner skips their unsent invoices and removing the exclusion re-queues them
    (a background job queued by the save; run here directly)."""
    from jobs.queues import queue
    from webapp.practice_settings import reevaluate_filters
    from webapp.sync.discovery import poll

    practice = clinic.practice
    base = {**ALL_VALID, "only_paid": "", "skip_zero_total": "", "closed_policy": "ignore",
            "sync_from": (date.today() - timedelta(days=400)).isoformat(), "invoice_status": "AUTHORISED",
            "line_amount_types": "Exclusive"}
    post_settings(web, practice, base)
    poll(practice.id)
    unsent = [r for r in clinic.rows("invoice") if r.status in ("pending", "waiting")]
    assert unsent
    practitioner = str(unsent[0].source["invoice"]["practitioner_id"])
    theirs = {r.id for r in unsent if str(r.source["invoice"].get("practitioner_id")) == practitioner}

    response = post_settings(web, practice, dict(base, exclude_practitioners=[practitioner]))
    assert response.status_code == 302
    jobs = [j for j in queue("live", redis_conn).get_jobs()
            if j.func_name == "webapp.practice_settings.reevaluate_filters"]
    assert jobs and jobs[0].args[0] == practice.id
    counts = reevaluate_filters(*jobs[0].args)
    rows = {r.id: r for r in clinic.rows("invoice")}
    assert counts["skipped"] == len(theirs)
    assert all(rows[i].status == "skipped" and "is excluded in Settings" in rows[i].status_reason for i in theirs)
    assert all(rows[r.id].status in ("pending", "waiting") for r in unsent if r.id not in theirs)

    post_settings(web, practice, base)
    counts = reevaluate_filters(practice.id)
    assert counts["requeued"] == len(theirs)
    rows = {r.id: r for r in clinic.rows("invoice")}
    assert all(rows[i].status == "pending" for i in theirs)
    assert audits("practice.refilter")


def test_text_is_escaped(clinic, web):
    response = post_settings(web, clinic.practice, dict(ALL_VALID, reference_template="<script>x</script>{number}"))
    assert response.status_code == 302
    page = web.client.get(f"/practices/{clinic.practice.id}/settings/").get_data(as_text=True)
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;{number}" in page


def test_post_without_csrf_is_refused(clinic, web):
    before = stored(clinic.practice)
    response = post_settings(web, clinic.practice, ALL_VALID, token=False)
    assert response.status_code == 400
    assert stored(clinic.practice) == before


def test_support_reads_but_cannot_change(clinic, web, make_user, client):
    practice = clinic.practice
    token = web.csrf_token(f"/practices/{practice.id}/settings/")
    web.client.post("/logout", data={"csrf_token": token})
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    page = web.client.get(f"/practices/{practice.id}/settings/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-testid="read-only"' in text and 'data-testid="settings-form"' not in text
    assert 'name="due_days"' not in text
    assert 'data-testid="value-invoice_status">' in text
    token = web.csrf_token("/")
    response = web.client.post(f"/practices/{practice.id}/settings/", data=dict(ALL_VALID, csrf_token=token))
    assert response.status_code == 403
    assert stored(practice).get("invoice_status") is None


def test_other_practice_is_not_found(clinic, web, make_user, make_practice):
    other = make_practice("south")
    token = web.csrf_token("/")
    web.client.post("/logout", data={"csrf_token": token})
    make_user("north@example.com", role="admin", practice_slug=clinic.practice.slug)
    web.login("north@example.com", PASSWORD)
    assert web.client.get(f"/practices/{clinic.practice.id}/settings/").status_code == 200
    assert web.client.get(f"/practices/{other.id}/settings/").status_code == 404
    token = web.csrf_token("/")
    response = web.client.post(f"/practices/{other.id}/settings/", data=dict(ALL_VALID, csrf_token=token))
    assert response.status_code == 404
    assert web.client.get("/practices/99999/settings/").status_code == 404
    listing = web.client.get("/settings/").get_data(as_text=True)
    assert clinic.practice.name in listing and "South" not in listing


def test_settings_list_links_to_both_screens(clinic, web):
    text = web.client.get("/settings/").get_data(as_text=True)
    assert f'href="/practices/{clinic.practice.id}/settings/"' in text
    assert f'href="/practices/{clinic.practice.id}/mappings/"' in text
