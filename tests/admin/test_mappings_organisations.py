"""Mappings and default accounts per Xero organisation (a practice with two, sandbox Cliniko and Xero):
the Mappings screen's organisation selector, an organisation's own mapping saved, audited, re-queueing only
that organisation's fixable failures, and used for the invoices routed there (not for the others); each
organisation's own default accounts on the practice page, checked against its lists with clear errors."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from sandbox.xero.fixtures import DEMO_ORG_NAME, SECOND_ORG_NAME
from tests.admin.test_mappings import form_of, options
from tests.conftest import CsrfClient
from tests.support.engine import PASSWORD
from tests.sync.test_organisations import connections, two_orgs  # noqa: F401  (fixture)
from webapp.extensions import db
from webapp.models import AuditEntry, ClinikoRecord, Mapping, SyncJob, XeroAccount, XeroConnection


@pytest.fixture
def routed(two_orgs):  # noqa: F811
    """The two-organisation clinic with its second business routed to the second organisation and its invoices
    discovered (nothing sent)."""
    from webapp.sync import routing
    from webapp.sync.backfill import run, start
    from webapp.sync.catalogue import lookup

    clinic = two_orgs
    conns = connections(clinic.practice.id)
    first, second = conns[DEMO_ORG_NAME], conns[SECOND_ORG_NAME]
    businesses = sorted(lookup(clinic.practice.id, "business"), key=int)
    routing.set_route(clinic.practice, businesses[1], second.id, None)
    backfill = start(clinic.practice, date.today() - timedelta(days=400), None)
    db.session.commit()
    run(backfill.id)
    routing.assign(clinic.practice.id)
    db.session.commit()
    return clinic, first, second


def url(practice, organisation=None):
    return f"/practices/{practice.id}/mappings/" + (f"?organisation={organisation.id}" if organisation else "")


def line_items(row, connection):
    """The invoice's lines as the push would send them from that organisation."""
    from webapp.sync import plans
    from webapp.sync.context import load

    built = plans.invoice_for_row(load(row.practice, connection), row)
    assert built.payload is not None, built
    return built.payload["LineItems"]


def billable_rows(clinic, connection, item_id):
    """Invoice rows routed to `connection` with a line for the billable item."""
    return [r for r in clinic.rows("invoice") if r.connection_id == connection.id and r.status == "pending"
            and any(str(i.get("billable_item_id")) == item_id and not i.get("product_id")
                    for i in (r.source or {}).get("items") or [])]


def test_an_organisations_own_mapping_is_saved_audited_and_used_for_its_invoices(routed, web):
    clinic, first, second = routed
    practice = clinic.practice
    item = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == "billable_item")
        .order_by(ClinikoRecord.id)).first()
    theirs, ours = billable_rows(clinic, second, item.cliniko_id), billable_rows(clinic, first, item.cliniko_id)
    if not theirs or not ours:
        # Pick an item both organisations have invoices for.
        for candidate in db.session.scalars(select(ClinikoRecord).where(
                ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == "billable_item")):
            theirs, ours = (billable_rows(clinic, second, candidate.cliniko_id),
                            billable_rows(clinic, first, candidate.cliniko_id))
            if theirs and ours:
                item = candidate
                break
    assert theirs and ours, "the seeded clinic should bill one item at both businesses"
    # A failure in each organisation that a mapping could fix.
    for row in (theirs[-1], ours[-1]):
        row.status, row.error_category, row.failure_reason = "failed", "mapping", "test: no account"
    db.session.commit()

    # The selector: practice-wide and each organisation.
    page = web.client.get(url(practice)).get_data(as_text=True)
    assert 'data-testid="organisation-selector"' in page
    assert f'href="/practices/{practice.id}/mappings/?organisation={second.id}"' in page
    html = web.client.get(url(practice, second)).get_data(as_text=True)
    assert f"{SECOND_ORG_NAME}&#39;s own mappings" in html or f"{SECOND_ORG_NAME}'s own mappings" in html
    assert "260" in options(html, f"account_code__{item.cliniko_id}")

    form = form_of(html, "billable_item")
    form[f"account_code__{item.cliniko_id}"] = "260"
    form["organisation"] = str(second.id)
    response = web.client.post(f"/practices/{practice.id}/mappings/billable_item", data=form)
    assert response.status_code == 302 and f"organisation={second.id}" in response.headers["Location"]
    shown = web.client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Saved billable items for {SECOND_ORG_NAME}: 1 mapped" in shown.replace("&#39;", "'")
    assert "1 failed invoice re-queued" in shown

    db.session.expire_all()
    own = db.session.scalars(select(Mapping).where(Mapping.practice_id == practice.id,
                                                   Mapping.kind == "billable_item")).all()
    assert [(m.cliniko_id, m.connection_id, m.account_code) for m in own] == [(item.cliniko_id, second.id, "260")]
    # Only the second organisation's failure went back to the queue.
    assert db.session.get(SyncJob, theirs[-1].id).status == "pending"
    assert db.session.get(SyncJob, ours[-1].id).status == "failed"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "mapping.save")
                               .order_by(AuditEntry.id.desc())).first()
    assert entry.details["organisation"] == SECOND_ORG_NAME and entry.details["connection_id"] == second.id

    # The push's plan: the second organisation's invoices use 260 for that item, the first's the default 200.
    def codes(row, connection):
        return {li["AccountCode"] for li in line_items(row, connection) if li.get("ItemCode") is None}

    their_lines = [li for li in line_items(theirs[0], second) if "AccountCode" in li]
    assert any(li["AccountCode"] == "260" for li in their_lines)
    assert "260" not in codes(ours[0], first)
    assert "200" in codes(ours[0], first)
    # The job detail previews the row with its own organisation's mapping.
    from webapp.sync.preview import explain_invoice

    preview = explain_invoice(db.session.get(SyncJob, theirs[0].id))
    assert any(li.get("AccountCode") == "260" for li in preview.payload["LineItems"])

    # The practice-wide page is unchanged, and the organisation's page shows it chosen.
    page = web.client.get(url(practice)).get_data(as_text=True)
    assert form_of(page, "billable_item")[f"account_code__{item.cliniko_id}"] == ""
    page = web.client.get(url(practice, second)).get_data(as_text=True)
    assert form_of(page, "billable_item")[f"account_code__{item.cliniko_id}"] == "260"


def test_blank_in_an_organisation_says_which_practice_wide_mapping_applies(routed, web):
    clinic, _, second = routed
    practice = clinic.practice
    item = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == "product").order_by(ClinikoRecord.id)).first()
    html = web.client.get(url(practice)).get_data(as_text=True)
    form = form_of(html, "product")
    form[f"account_code__{item.cliniko_id}"] = "260"
    assert web.client.post(f"/practices/{practice.id}/mappings/product", data=form).status_code == 302
    page = web.client.get(url(practice, second)).get_data(as_text=True)
    row = page[page.index(f'data-testid="row-product-{item.cliniko_id}"'):]
    assert "practice-wide: 260 ·" in row[:row.index("</tr>")]
    # An organisation's own choice, then back to blank: the practice-wide row is untouched.
    form = form_of(page, "product")
    form[f"account_code__{item.cliniko_id}"] = "200"
    form["organisation"] = str(second.id)
    web.client.post(f"/practices/{practice.id}/mappings/product", data=form)
    form[f"account_code__{item.cliniko_id}"] = ""
    response = web.client.post(f"/practices/{practice.id}/mappings/product", data=form, follow_redirects=True)
    assert "1 back to the practice-wide mapping" in response.get_data(as_text=True)
    db.session.expire_all()
    left = db.session.scalars(select(Mapping).where(Mapping.practice_id == practice.id, Mapping.kind == "product"))
    assert [(m.connection_id, m.account_code) for m in left] == [(None, "260")]


def test_organisation_of_another_practice_or_garbage_is_not_found(routed, web, make_practice):
    clinic, _, second = routed
    practice = clinic.practice
    other = make_practice("other")
    theirs = XeroConnection(practice_id=other.id, tenant_id="t-other", tenant_name="Other Org", status="active")
    db.session.add(theirs)
    db.session.commit()
    assert web.client.get(url(practice, theirs)).status_code == 404
    assert web.client.get(f"/practices/{practice.id}/mappings/?organisation=abc").status_code == 404
    html = web.client.get(url(practice, second)).get_data(as_text=True)
    form = form_of(html, "billable_item")
    form["organisation"] = str(theirs.id)
    before = db.session.scalar(select(Mapping.id).order_by(Mapping.id.desc()).limit(1))
    assert web.client.post(f"/practices/{practice.id}/mappings/billable_item", data=form).status_code == 404
    assert db.session.scalar(select(Mapping.id).order_by(Mapping.id.desc()).limit(1)) == before


# -- each organisation's default accounts ----------------------------------------------------------------------

def defaults_form(html: str, connection) -> dict:
    section = html[html.index(f'data-testid="organisation-defaults-form-{connection.id}"'):]
    section = section[:section.index("</form>")]
    data = {"csrf_token": re.search(r'name="csrf_token"[^>]*value="([^"]+)"', section).group(1),
            "connection": str(connection.id)}
    for name in ("sales_account", "payment_account", "rounding_account", "tax_exempt"):
        data[name] = ""
    return data


def test_an_organisations_default_accounts_are_checked_saved_audited_and_used(routed, web):
    from webapp.sync.context import settings_for

    clinic, first, second = routed
    practice = clinic.practice
    page = web.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    assert 'data-testid="organisation-defaults"' in page
    for c in (first, second):
        assert f'data-testid="organisation-defaults-form-{c.id}"' in page
    summary = re.search(rf'data-testid="organisation-defaults-summary-{second.id}">(.*?)</p>', page, re.S).group(1)
    assert "200 (practice)" in " ".join(summary.split())

    form = defaults_form(page, second)
    form.update(sales_account="260", payment_account="090")
    response = web.client.post(f"/practices/{practice.id}/defaults", data=form)
    assert response.status_code == 302
    shown = web.client.get(response.headers["Location"]).get_data(as_text=True).replace("&#39;", "'")
    assert f"Default accounts saved for {SECOND_ORG_NAME}" in shown
    db.session.expire_all()
    assert db.session.get(XeroConnection, second.id).settings == {"sales_account": "260", "payment_account": "090"}
    assert db.session.get(XeroConnection, first.id).settings == {}
    assert (practice.settings or {})["sales_account"] == "200"  # the practice's default is unchanged
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "organisation.defaults")).one()
    assert entry.object_id == str(second.id) and entry.details["changed"]["sales_account"] == [None, "260"]
    assert settings_for(practice, db.session.get(XeroConnection, second.id)).sales_account == "260"
    assert settings_for(practice, db.session.get(XeroConnection, first.id)).sales_account == "200"

    # An unmapped line of an invoice routed to the second organisation now goes to 260; the first's to 200.
    row2 = next(r for r in clinic.rows("invoice") if r.connection_id == second.id and r.status == "pending")
    row1 = next(r for r in clinic.rows("invoice") if r.connection_id == first.id and r.status == "pending")
    assert {li.get("AccountCode") for li in line_items(row2, db.session.get(XeroConnection, second.id))} >= {"260"}
    assert "260" not in {li.get("AccountCode") for li in line_items(row1, db.session.get(XeroConnection, first.id))}


def test_organisation_defaults_refuse_bad_accounts_with_a_reason_and_keep_what_was_there(routed, web):
    clinic, _, second = routed
    practice = clinic.practice
    second.settings = {"sales_account": "250"}  # archived in sandbox Xero's chart
    db.session.commit()
    page = web.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    form = defaults_form(page, second)
    form.update(sales_account="250", payment_account="090")
    response = web.client.post(f"/practices/{practice.id}/defaults", data=form)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert f"Nothing was saved for {SECOND_ORG_NAME}" in text.replace("&#39;", "'")
    assert "is archived in Xero; choose an active one" in text
    # A bank account offered as a sales account is not a choice at all.
    form.update(sales_account="090")
    response = web.client.post(f"/practices/{practice.id}/defaults", data=form)
    assert response.status_code == 400 and "Not a valid choice" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(XeroConnection, second.id).settings == {"sales_account": "250"}
    assert not db.session.scalars(select(AuditEntry).where(AuditEntry.action == "organisation.defaults")).all()


def test_a_practice_default_the_organisation_cannot_use_is_pointed_out(routed, web):
    clinic, _, second = routed
    practice = clinic.practice
    rounding = db.session.scalars(select(XeroAccount).where(XeroAccount.connection_id == second.id,
                                                            XeroAccount.code == "860")).one()
    db.session.delete(rounding)
    db.session.commit()
    page = web.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    problems = re.findall(rf'data-testid="organisation-defaults-problem-{second.id}">([^<]*)<', page)
    assert problems and "rounding account 860 cannot be used here" in problems[0]
    assert f"Xero has no account with code &#39;860&#39; in {SECOND_ORG_NAME}" in problems[0]


def test_organisation_defaults_scope_and_roles(routed, web, app, make_user, make_practice):
    clinic, _, second = routed
    practice = clinic.practice
    other = make_practice("other")
    theirs = XeroConnection(practice_id=other.id, tenant_id="t-other", tenant_name="Other Org", status="active")
    db.session.add(theirs)
    db.session.commit()
    page = web.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    form = defaults_form(page, second)
    form.update(connection=str(theirs.id), sales_account="260", payment_account="090")
    assert web.client.post(f"/practices/{practice.id}/defaults", data=form).status_code == 404
    form.update(connection="abc")
    assert web.client.post(f"/practices/{practice.id}/defaults", data=form).status_code == 404
    # Without a CSRF token: refused.
    no_token = {k: v for k, v in form.items() if k != "csrf_token"}
    no_token["connection"] = str(second.id)
    assert web.client.post(f"/practices/{practice.id}/defaults", data=no_token).status_code == 400
    # A support user sees the organisations' defaults but no form, and cannot post.
    make_user("support@example.com", role="support")
    support = CsrfClient(app.test_client())
    support.login("support@example.com", PASSWORD)
    page = support.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    assert f'data-testid="organisation-defaults-summary-{second.id}"' in page
    assert f'data-testid="organisation-defaults-form-{second.id}"' not in page
    token = support.csrf_token(f"/practices/{practice.id}/")
    response = support.client.post(f"/practices/{practice.id}/defaults", data={
        "csrf_token": token, "connection": str(second.id), "sales_account": "260", "payment_account": "090"})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(XeroConnection, second.id).settings == {}
