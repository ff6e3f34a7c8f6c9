"""The Mappings screen: Cliniko catalogue beside the Xero choices, defaults for unmapped rows, archived
Xero choices hidden, save per kind (create / update / delete Mapping rows), audit, re-queue, refresh
buttons, roles, scope and CSRF."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.admin.test_settings import audits, failed_row, small_clinic
from tests.support.engine import PASSWORD
from webapp.extensions import db
from webapp.models import ClinikoRecord, Mapping, SyncJob, XeroTrackingOption


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with small_clinic(app, web, make_user, make_practice, xero_sandbox) as clinic:
        yield clinic


def records(practice, kind):
    return db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == kind).order_by(ClinikoRecord.id)).all()


def mappings(practice, kind):
    db.session.expire_all()
    return {m.cliniko_id: m for m in db.session.scalars(select(Mapping).where(
        Mapping.practice_id == practice.id, Mapping.kind == kind))}


def url(practice):
    return f"/practices/{practice.id}/mappings/"


def form_of(html: str, kind: str) -> dict[str, str]:
    """The selected value of every select in one kind's form, as a browser would submit it."""
    section = html[html.index(f'data-testid="table-{kind}"'):]
    section = section[:section.index("</form>")]
    data = {"csrf_token": re.search(r'name="csrf_token"[^>]*value="([^"]+)"', section).group(1)}
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', section, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"|<option value="([^"]*)" selected', body)
        data[name] = (chosen.group(1) or chosen.group(2) or "") if chosen else ""
    return data


def options(html: str, name: str) -> list[str]:
    body = re.search(rf'<select[^>]*name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'value="([^"]*)"', body)


def test_tables_show_catalogue_pickers_and_defaults(clinic, web):
    practice = clinic.practice
    page = web.client.get(url(practice))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for kind in ("billable_item", "product", "practitioner", "business", "tax"):
        assert f'data-testid="table-{kind}"' in text
        for record in records(practice, kind):
            assert f'data-testid="row-{kind}-{record.cliniko_id}"' in text
    item = records(practice, "billable_item")[0]
    accounts = options(text, f"account_code__{item.cliniko_id}")
    assert "" in accounts and "200" in accounts and "260" in accounts
    assert "250" not in accounts  # archived in Xero: not offered
    assert "090" not in accounts  # a bank account is not a sales account
    business = records(practice, "business")[0]
    assert "090" in options(text, f"payment_account_code__{business.cliniko_id}")
    tracking = options(text, f"tracking_option_id__{business.cliniko_id}")
    archived = {o.option_id for o in db.session.scalars(select(XeroTrackingOption).where(
        XeroTrackingOption.status != "ACTIVE"))}
    assert archived and not archived & set(tracking) and len(tracking) > 1
    tax = records(practice, "tax")[0]
    taxes = options(text, f"tax_type__{tax.cliniko_id}")
    assert "OUTPUT" in taxes and "TAX001" not in taxes and "INPUT" not in taxes  # archived / expense-only
    # Unmapped rows say what the default will be.
    row = text[text.index(f'data-testid="row-billable_item-{item.cliniko_id}"'):]
    assert "default: 200 · Sales" in row[:row.index("</tr>")]
    row = text[text.index(f'data-testid="row-business-{business.cliniko_id}"'):]
    row = row[:row.index("</tr>")]
    assert "default: 090 · " in row and "default: no tracking" in row
    # Mapped taxes (wire_clinic maps GST → OUTPUT) show the choice selected, not a default.
    gst = next(r for r in records(practice, "tax") if r.name == "GST")
    assert form_of(text, "tax")[f"tax_type__{gst.cliniko_id}"] == "OUTPUT"


def test_save_creates_updates_and_deletes_rows_audits_and_requeues(clinic, web, redis_conn):
    practice = clinic.practice
    first, second = records(practice, "billable_item")[:2]
    fixable = failed_row(practice, "mapping", "7001")

    data = form_of(web.client.get(url(practice)).get_data(as_text=True), "billable_item")
    data[f"account_code__{first.cliniko_id}"] = "260"
    data[f"account_code__{second.cliniko_id}"] = "270"
    response = web.client.post(url(practice) + "billable_item", data=data)
    assert response.status_code == 302
    rows = mappings(practice, "billable_item")
    assert rows[first.cliniko_id].account_code == "260" and rows[first.cliniko_id].cliniko_name == first.name
    assert rows[second.cliniko_id].account_code == "270"
    assert len(rows) == 2
    assert db.session.get(SyncJob, fixable.id).status == "pending"
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved billable items: 2 mapped, 0 changed, 0 back to the default. 1 failed invoice re-queued." in page
    entry = audits("mapping.save")[-1]
    assert entry.details["kind"] == "billable_item" and entry.details["created"] == 2
    assert entry.details["changes"][first.cliniko_id] == {"account_code": [None, "260"]}

    # Update one, blank the other (→ default: the row is deleted).
    data = form_of(page, "billable_item")
    assert data[f"account_code__{first.cliniko_id}"] == "260"
    data[f"account_code__{first.cliniko_id}"] = "200"
    data[f"account_code__{second.cliniko_id}"] = ""
    response = web.client.post(url(practice) + "billable_item", data=data)
    rows = mappings(practice, "billable_item")
    assert list(rows) == [first.cliniko_id] and rows[first.cliniko_id].account_code == "200"
    page = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 changed, 1 back to the default. No failed invoices needed re-queueing." in page
    assert len(audits("mapping.save")) == 2

    # Saving unchanged does nothing.
    response = web.client.post(url(practice) + "billable_item", data=form_of(page, "billable_item"))
    assert "No changes to billable items." in web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(audits("mapping.save")) == 2


def test_business_and_practitioner_columns_and_taxes(clinic, web):
    practice = clinic.practice
    business, practitioner = records(practice, "business")[0], records(practice, "practitioner")[0]
    option = db.session.scalars(select(XeroTrackingOption).where(
        XeroTrackingOption.status == "ACTIVE", XeroTrackingOption.category_name == "Location")).first()
    page = web.client.get(url(practice)).get_data(as_text=True)
    data = form_of(page, "business")
    data.update({f"account_code__{business.cliniko_id}": "260",
                 f"payment_account_code__{business.cliniko_id}": "611",
                 f"tracking_option_id__{business.cliniko_id}": option.option_id})
    assert web.client.post(url(practice) + "business", data=data).status_code == 302
    row = mappings(practice, "business")[business.cliniko_id]
    assert (row.account_code, row.payment_account_code, row.tracking_option_id) == ("260", "611", option.option_id)

    data = form_of(page, "practitioner")
    data[f"payment_account_code__{practitioner.cliniko_id}"] = "612"
    assert web.client.post(url(practice) + "practitioner", data=data).status_code == 302
    row = mappings(practice, "practitioner")[practitioner.cliniko_id]
    assert row.payment_account_code == "612" and row.account_code is None

    # The tax form unmaps GST (back to the tax-exempt default).
    gst = next(r for r in records(practice, "tax") if r.name == "GST")
    data = form_of(page, "tax")
    data[f"tax_type__{gst.cliniko_id}"] = ""
    assert web.client.post(url(practice) + "tax", data=data).status_code == 302
    assert gst.cliniko_id not in mappings(practice, "tax")
    page = web.client.get(url(practice)).get_data(as_text=True)
    row = page[page.index(f'data-testid="row-tax-{gst.cliniko_id}"'):]
    assert "default: GST Free Income (EXEMPTOUTPUT)" in row[:row.index("</tr>")]


def test_archived_or_unknown_choice_is_refused(clinic, web):
    practice = clinic.practice
    item = records(practice, "billable_item")[0]
    for bad in ("250", "999", "090"):
        data = form_of(web.client.get(url(practice)).get_data(as_text=True), "billable_item")
        data[f"account_code__{item.cliniko_id}"] = bad
        response = web.client.post(url(practice) + "billable_item", data=data)
        assert response.status_code == 400
        assert "Not a valid choice" in response.get_data(as_text=True)
    assert mappings(practice, "billable_item") == {}


def test_existing_archived_mapping_is_shown_as_archived(clinic, web):
    practice = clinic.practice
    item = records(practice, "billable_item")[0]
    db.session.add(Mapping(practice_id=practice.id, kind="billable_item", cliniko_id=item.cliniko_id,
                           cliniko_name=item.name, account_code="250"))
    db.session.commit()
    text = web.client.get(url(practice)).get_data(as_text=True)
    assert "250 · Consulting Revenue (old) (archived in Xero)" in text


def test_refresh_buttons(clinic, web):
    practice = clinic.practice
    page = web.client.get(url(practice)).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = web.client.post(url(practice) + "refresh/cliniko", data={"csrf_token": token})
    assert response.status_code == 302
    text = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r"Read from Cliniko: \d+ billable items, \d+ products", text)
    response = web.client.post(url(practice) + "refresh/xero", data={"csrf_token": token})
    text = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r"Read \d+ accounts, \d+ tax rates and \d+ tracking options from Xero", text)
    assert web.client.post(url(practice) + "refresh/xero", data={}).status_code == 400


def test_csrf_support_and_scope(clinic, web, make_user, make_practice):
    practice = clinic.practice
    item = records(practice, "billable_item")[0]
    data = form_of(web.client.get(url(practice)).get_data(as_text=True), "billable_item")
    data[f"account_code__{item.cliniko_id}"] = "260"
    no_token = {k: v for k, v in data.items() if k != "csrf_token"}
    assert web.client.post(url(practice) + "billable_item", data=no_token).status_code == 400
    assert web.client.post(url(practice) + "nonsense", data=data).status_code == 404
    assert mappings(practice, "billable_item") == {}

    web.client.post("/logout", data={"csrf_token": data["csrf_token"]})
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    text = web.client.get(url(practice)).get_data(as_text=True)
    assert "<select" not in text and "<form method=\"post\" action=\"/practices" not in text
    assert "default: 200 · Sales" in text and "GST Free Income (EXEMPTOUTPUT)" in text
    token = web.csrf_token("/")
    data["csrf_token"] = token
    assert web.client.post(url(practice) + "billable_item", data=data).status_code == 403
    assert web.client.post(url(practice) + "refresh/cliniko", data={"csrf_token": token}).status_code == 403
    assert mappings(practice, "billable_item") == {}

    other = make_practice("south")
    web.client.post("/logout", data={"csrf_token": token})
    make_user("north@example.com", role="admin", practice_slug=practice.slug)
    web.login("north@example.com", PASSWORD)
    assert web.client.get(url(other)).status_code == 404
    data["csrf_token"] = web.csrf_token("/")
    assert web.client.post(url(other) + "billable_item", data=data).status_code == 404


def test_names_from_cliniko_are_escaped(clinic, web):
    practice = clinic.practice
    item = records(practice, "billable_item")[0]
    item.name = '<img src=x onerror=alert(1)> "Consult"'
    db.session.commit()
    text = web.client.get(url(practice)).get_data(as_text=True)
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
