"""The Routing screen: Cliniko businesses → Xero organisations; admins edit, support reads, CSRF, scope."""

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import AuditEntry, BusinessRoute, ClinikoRecord, SyncJob, XeroConnection

PASSWORD = "correct horse battery"


@pytest.fixture
def practice(make_practice):
    practice = make_practice("north")
    for tenant, name in (("t-1", "Demo Clinic Pty Ltd"), ("t-2", "Harbourside Physio Pty Ltd")):
        db.session.add(XeroConnection(practice_id=practice.id, tenant_id=tenant, tenant_name=name, status="active"))
    for bid, name in (("11", "North Sydney"), ("12", "Manly")):
        db.session.add(ClinikoRecord(practice_id=practice.id, kind="business", cliniko_id=bid, name=name, data={}))
    db.session.commit()
    return practice


def conns(practice):
    return {c.tenant_name: c for c in db.session.scalars(
        select(XeroConnection).where(XeroConnection.practice_id == practice.id))}


def invoice(practice, cliniko_id, business, connection, **fields):
    row = SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=cliniko_id, connection_id=connection.id,
                  parent_cliniko_id="p" + cliniko_id, invoice_number=f"CLK-{cliniko_id}",
                  source={"invoice": {"id": cliniko_id, "business_id": business}}, **fields)
    db.session.add(row)
    return row


def token(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_admin_routes_a_business_and_is_told_how_many_rows_moved(web, make_user, practice):
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    c = conns(practice)
    first, second = c["Demo Clinic Pty Ltd"], c["Harbourside Physio Pty Ltd"]
    invoice(practice, "1", "12", first, status="pending")
    invoice(practice, "2", "12", first, status="failed")
    invoice(practice, "3", "12", first, status="synced", xero_id="X-3")
    invoice(practice, "4", "11", first, status="pending")
    db.session.commit()

    page = web.client.get(f"/practices/{practice.id}/routing/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "North Sydney" in html and "Manly" in html and "Default (Demo Clinic Pty Ltd)" in html
    response = web.client.post(f"/practices/{practice.id}/routing/", data={
        "csrf_token": token(html), "route__12": str(second.id), "route__11": ""}, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Routing saved for 1 business. 4 rows not yet in Xero moved (2 invoices" in text
    rows = {r.cliniko_id: r for r in db.session.scalars(select(SyncJob).where(SyncJob.kind == "invoice"))}
    db.session.expire_all()
    assert rows["1"].connection_id == rows["2"].connection_id == second.id
    assert rows["3"].connection_id == first.id  # in Xero already: stays
    assert rows["4"].connection_id == first.id  # another business
    contacts = db.session.scalars(select(SyncJob).where(SyncJob.kind == "contact")).all()
    assert {(r.cliniko_id, r.connection_id) for r in contacts} == {("p1", second.id), ("p2", second.id)}
    assert db.session.scalars(select(BusinessRoute)).one().connection_id == second.id
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "routing.change")).one()
    assert entry.details["moved"]["invoices"] == 2 and entry.object_id == "12"
    # The page shows the choice; saving again changes nothing.
    html = web.client.get(f"/practices/{practice.id}/routing/").get_data(as_text=True)
    assert re.search(rf'<option value="{second.id}" selected>Harbourside', html)
    response = web.client.post(f"/practices/{practice.id}/routing/", data={
        "csrf_token": token(html), "route__12": str(second.id)}, follow_redirects=True)
    assert "Nothing changed." in response.get_data(as_text=True)
    # The practice page lists both organisations, which businesses go where, and "connect another".
    html = web.client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    assert "Connect another Xero organisation" in html
    assert f'data-testid="routed-{second.id}">Businesses: Manly<' in html
    assert f'data-testid="routed-{first.id}">Businesses: North Sydney<' in html


def test_an_organisation_of_another_practice_is_refused(web, make_user, make_practice, practice):
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    other = make_practice("south")
    foreign = XeroConnection(practice_id=other.id, tenant_id="t-9", tenant_name="Elsewhere", status="active")
    db.session.add(foreign)
    db.session.commit()
    html = web.client.get(f"/practices/{practice.id}/routing/").get_data(as_text=True)
    response = web.client.post(f"/practices/{practice.id}/routing/", data={
        "csrf_token": token(html), "route__12": str(foreign.id)})
    assert response.status_code == 400
    assert "Choose one of the organisations connected to this practice" in response.get_data(as_text=True)
    assert db.session.scalars(select(BusinessRoute)).all() == []


def test_without_csrf_nothing_is_saved(web, make_user, practice):
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    second = conns(practice)["Harbourside Physio Pty Ltd"]
    response = web.client.post(f"/practices/{practice.id}/routing/", data={"route__12": str(second.id)})
    assert response.status_code == 400
    assert db.session.scalars(select(BusinessRoute)).all() == []


def test_support_reads_the_routing_but_cannot_change_it(web, make_user, practice):
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    routing_page = web.client.get(f"/practices/{practice.id}/routing/")
    html = routing_page.get_data(as_text=True)
    assert routing_page.status_code == 200 and "Manly" in html
    assert "<select" not in html and "Only admins can change the routing." in html
    second = conns(practice)["Harbourside Physio Pty Ltd"]
    token_value = web.csrf_token(f"/practices/{practice.id}/")
    response = web.client.post(f"/practices/{practice.id}/routing/", data={
        "csrf_token": token_value, "route__12": str(second.id)})
    assert response.status_code == 403
    assert db.session.scalars(select(BusinessRoute)).all() == []


def test_another_practice_is_404(web, make_user, make_practice, practice):
    other = make_practice("south")
    make_user("scoped@example.com", practice_slug="north")
    web.login("scoped@example.com", PASSWORD)
    assert web.client.get(f"/practices/{other.id}/routing/").status_code == 404
    assert web.client.get(f"/practices/{practice.id}/routing/").status_code == 200
