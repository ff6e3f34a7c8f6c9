"""What people see of bad Cliniko input: HTML in names escaped on the job list and detail pages, formula
cells neutralised in the CSV export, and bad form values on the settings and backfill screens refused
with a clear message (never a 500, never saved)."""

from __future__ import annotations

import csv
import html
import io
import re

from sqlalchemy import select

from tests.badinput.support import BAD_ID, BAD_NUMBER
from webapp.extensions import db
from webapp.models import Backfill, Practice

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


def test_html_in_names_is_escaped_on_the_job_list_and_detail(stage):
    s = stage
    s.load(patients=[s.patient("600011", first_name=SCRIPT, last_name="<b>Doe</b>")],
           invoices=[s.invoice(BAD_ID, BAD_NUMBER, 5, patient_id="600011", total_amount="99.0"),
                     s.invoice("700002", BAD_NUMBER + 1, 6, patient_id="600011", total_amount="99.0")],
           invoice_items=[s.item(BAD_ID + "01", BAD_ID, name=IMG),
                          s.item("70000201", "700002", name=IMG, quantity=None)])
    assert s.cycle() is None
    synced, failed = s.row("invoice", BAD_ID), s.row("invoice", "700002")
    assert synced.status == "synced" and failed.status == "failed"
    assert IMG in failed.failure_reason  # the reason quotes the item's name...
    client = s.web.client
    pages = [client.get("/jobs/"), client.get(f"/jobs/?q={SCRIPT}"), client.get(f"/jobs/{synced.id}/"),
             client.get(f"/jobs/{failed.id}/"), client.get(f"/jobs/?state=failed&q={IMG}")]
    for page in pages:
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        # ...but no page carries the markup live, only escaped.
        assert SCRIPT not in text and "<b>Doe</b>" not in text and IMG not in text
        assert "onerror=alert" not in text.replace("onerror=alert(2)&gt;", "")
    assert html.escape(SCRIPT) in pages[0].get_data(as_text=True).replace("&#x27;", "'")
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages[3].get_data(as_text=True)


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


def test_csv_export_neutralises_formula_cells(stage):
    s = stage
    patients, invoices, items = [], [], []
    for n, formula in enumerate(FORMULAS):
        pid, iid = f"60010{n}", f"72000{n}"
        patients.append(s.patient(pid, first_name=formula, last_name=""))
        invoices.append(s.invoice(iid, 3000 + n, 5 + n, patient_id=pid, total_amount="99.0"))
        items.append(s.item(iid + "01", iid, quantity=None, name=formula))  # fails: the reason quotes it
    s.load(patients=patients, invoices=invoices, invoice_items=items)
    assert s.cycle() is None
    response = s.web.client.get("/jobs/export.csv", buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert len(body) >= 2 * len(FORMULAS)
    for row in body:
        for column, cell in zip(header, row, strict=True):
            if column == "amount":
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    names = {r[header.index("patient_name")] for r in body}
    # What a clean-up keeps of the name is neutralised with a leading quote, not dropped.
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in names and "'-2+3" in names and "'@SUM(A1:A9)" in names


BAD_SETTINGS = [
    ("due_days", "1e3"), ("due_days", "NaN"), ("due_days", "-5"), ("due_days", "9" * 40),
    ("rounding_tolerance", "NaN"), ("rounding_tolerance", "Infinity"), ("rounding_tolerance", "-0.05"),
    ("rounding_tolerance", "1e400"), ("sync_from", "2026-02-30"), ("sync_from", "yesterday"),
    ("time_zone", "Mars/Olympus_Mons"), ("time_zone", "\x00"), ("invoice_status", "PAID"),
    ("line_amount_types", "<script>"), ("reference_template", "{number} {__class__}"),
    ("reference_template", "{number"), ("line_description_template", "{item!r}"),
    ("invoice_number_prefix", "x" * 10_240), ("contact_number_prefix", "CLK\x00"),
]
VALID = {"invoice_status": "AUTHORISED", "invoice_number_prefix": "", "reference_template": "Cliniko {number}",
         "line_description_template": "{item}", "line_amount_types": "Exclusive", "due_days": "0",
         "contact_number_prefix": "CLK-", "contact_details": "email", "closed_policy": "ignore",
         "rounding_tolerance": "0.05", "time_zone": "Australia/Sydney"}


def _settings(practice_id):
    db.session.expire_all()
    return dict(db.session.get(Practice, practice_id).settings or {})


def test_bad_setting_values_are_refused_with_a_message(stage):
    url = f"/practices/{stage.practice_id}/settings/"
    before = _settings(stage.practice_id)
    problems = []
    for name, value in BAD_SETTINGS:
        form = dict(VALID, **{name: value}, csrf_token=stage.web.csrf_token(url))
        response = stage.web.client.post(url, data=form)
        text = html.unescape(response.get_data(as_text=True))
        error = re.search(rf'data-testid="error-{name}">([^<]*)<', text)
        if response.status_code != 400 or not (error and error.group(1).strip()):
            said = error and error.group(1)
            problems.append(f"{name}={value[:20]!r}: status {response.status_code}, message {said!r}")
        elif _settings(stage.practice_id) != before:
            problems.append(f"{name}={value[:20]!r}: saved anyway")
    assert not problems, "\n".join(problems)


BAD_SINCE = ["", "not-a-date", "2026-02-30", "31/01/2026", "0000-01-01", "9999-12-31", "2026-01-01T00:00:00Z' OR 1=1",
             SCRIPT, "1e3"]


def test_bad_backfill_dates_are_refused_with_a_message(stage):
    url = f"/backfill/{stage.practice_id}/"
    for since in BAD_SINCE:
        response = stage.web.client.post(f"/backfill/{stage.practice_id}/start",
                                         data={"since": since, "csrf_token": stage.web.csrf_token(url)})
        text = response.get_data(as_text=True)
        assert response.status_code == 400, (since, response.status_code)
        message = re.search(r'data-testid="backfill-error">([^<]*)<', text)
        assert message and message.group(1).strip(), since
        assert SCRIPT not in text
        assert db.session.scalar(select(Backfill).limit(1)) is None, since
