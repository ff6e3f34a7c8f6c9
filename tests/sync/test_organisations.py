"""Several Xero organisations per practice, end to end against the sandboxes: two Cliniko businesses routed
to two organisations connected through the real OAuth pages; each organisation ends with exactly its
business's invoices, contacts and payments; a routing change moves the rows not yet sent, synced rows stay."""

import re
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from sandbox.xero.fixtures import DEMO_ORG_NAME, SECOND_ORG_NAME
from tests.support.engine import PASSWORD, Clinic, connect_practice, map_taxes, money
from tests.support.servers import serve
from tests.support.xero import callback_path, consent_at_sandbox
from webapp import crypto
from webapp.extensions import db
from webapp.models import AuditEntry, Contact, SyncJob, XeroConnection


def connect_another(web, practice, org_name: str = SECOND_ORG_NAME):
    """"Connect another Xero organisation": the same OAuth pages; Xero now lists both, the admin picks one."""
    authorize = web.client.get(f"/practices/{practice.id}/xero/connect").headers["Location"]
    response = web.client.get(callback_path(consent_at_sandbox(authorize, org_name)))
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    assert "already connected" in html  # the first organisation is marked as such
    tenant = re.search(r'value="([0-9a-f-]{36})"[^>]*>\s*<label[^>]*>' + re.escape(org_name), html).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = web.client.post("/xero/choose", data={"tenant_id": tenant, "csrf_token": token})
    assert response.status_code == 302


@pytest.fixture
def two_orgs(app, web, make_user, make_practice, xero_app, xero_sandbox):
    """A practice of a seeded clinic connected to both sandbox organisations, mapped and enabled."""
    from sandbox.cliniko.app import create_app
    from webapp.practices import cliniko_client, enable, set_defaults
    from webapp.sync import catalogue

    with serve(create_app(api_key="sandbox-key-au1", seed=11, patients=40, invoices=160)) as url:
        app.config["CLINIKO_API_URL"] = f"{url}/v1"
        practice = make_practice("multi")
        practice.cliniko_api_key_encrypted = crypto.encrypt("sandbox-key-au1")
        db.session.commit()
        make_user("admin@example.com")
        web.login("admin@example.com", PASSWORD)
        connect_practice(web, practice)
        connect_another(web, practice)
        set_defaults(practice, None, sales_account="200", payment_account="090", rounding_account="860",
                     tax_exempt="EXEMPTOUTPUT")
        catalogue.refresh(practice, cliniko_client(practice))
        db.session.commit()
        map_taxes(practice)
        enable(practice, None)
        db.session.commit()
        yield Clinic(practice, url, xero_sandbox)


def organisations(clinic) -> dict[str, dict]:
    return {o["name"]: o for o in clinic.xero("GET", "state")["organisations"]}


def connections(practice_id) -> dict[str, XeroConnection]:
    return {c.tenant_name: c for c in db.session.scalars(
        select(XeroConnection).where(XeroConnection.practice_id == practice_id))}


def business_of(row) -> str:
    return str(((row.source or {}).get("invoice") or {}).get("business_id"))


def assert_each_org_holds_exactly_its_rows(clinic, conns):
    """Per organisation: its invoices, contacts and payments are exactly the synced rows routed to it, once."""
    orgs = organisations(clinic)
    rows = clinic.rows()
    for name, conn in conns.items():
        org = orgs[name]
        numbers = Counter(i["InvoiceNumber"] for i in org["invoices"] if i["Type"] == "ACCREC")
        assert all(n == 1 for n in numbers.values()), f"{name}: an invoice twice"
        mine = {r.invoice_number: r for r in rows if r.kind == "invoice" and r.status == "synced"
                and r.connection_id == conn.id}
        assert set(numbers) == set(mine), f"{name}: invoices differ from the rows routed to it"
        by_number = {i["InvoiceNumber"]: i for i in org["invoices"]}
        for number, row in mine.items():
            assert money(by_number[number]["Total"]) == money(row.amount)
        contact_numbers = Counter(c["ContactNumber"] for c in org["contacts"] if c.get("ContactNumber"))
        assert all(n == 1 for n in contact_numbers.values()), f"{name}: a contact twice"
        synced_contacts = {r.cliniko_id for r in rows if r.kind == "contact" and r.status == "synced"
                           and r.connection_id == conn.id}
        assert {n.removeprefix("CLK-") for n in contact_numbers} == synced_contacts, name
        # Every invoice's patient has its contact in the same organisation.
        assert {r.parent_cliniko_id for r in mine.values()} <= synced_contacts
        recorded = {c.cliniko_patient_id for c in db.session.scalars(select(Contact).where(
            Contact.connection_id == conn.id))}
        assert recorded == synced_contacts
        payments = [r for r in rows if r.kind == "payment" and r.status == "synced" and r.connection_id == conn.id]
        for row in payments:
            live = [p for p in by_number[row.invoice_number]["payments"] if p.get("Status") != "DELETED"]
            assert len(live) == 1 and money(live[0]["Amount"]) == money(row.amount), row.invoice_number
        paid_in_xero = sum(1 for i in org["invoices"] for p in i["payments"] if p.get("Status") != "DELETED")
        assert paid_in_xero == len(payments), f"{name}: payments differ"
    # Follow-ups always sit with their invoice.
    invoices = {r.cliniko_id: r for r in rows if r.kind == "invoice"}
    for row in rows:
        if row.kind in ("payment", "payment_delete", "void"):
            assert row.connection_id == invoices[row.cliniko_id].connection_id, (row.kind, row.cliniko_id)


def test_two_businesses_routed_to_two_organisations(two_orgs, runner):
    from webapp.sync import routing
    from webapp.sync.catalogue import lookup
    from webapp.sync.discovery import poll
    from webapp.sync_cli import drain

    clinic = two_orgs
    conns = connections(clinic.practice.id)
    assert set(conns) == {DEMO_ORG_NAME, SECOND_ORG_NAME}
    assert all(c.status == "active" for c in conns.values())
    first, second = conns[DEMO_ORG_NAME], conns[SECOND_ORG_NAME]
    assert routing.default_connection(clinic.practice.id).id == first.id

    businesses = sorted(lookup(clinic.practice.id, "business"), key=int)
    assert len(businesses) >= 2
    a, b = businesses[0], businesses[1]
    routing.set_route(clinic.practice, a, first.id, None)
    routing.set_route(clinic.practice, b, second.id, None)

    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait",
                                 "--timeout", "240"])
    assert result.exit_code == 0, result.output

    rows = clinic.rows()
    invoices = [r for r in rows if r.kind == "invoice"]
    assert invoices and all(r.connection_id is not None for r in rows)
    for row in invoices:
        expected = second.id if business_of(row) == b else first.id  # unrouted businesses: the default
        assert row.connection_id == expected, (row.cliniko_id, business_of(row))
    synced = Counter(r.connection_id for r in invoices if r.status == "synced")
    assert synced[first.id] > 10 and synced[second.id] > 10
    assert_each_org_holds_exactly_its_rows(clinic, conns)

    # A patient seen at both businesses has a contact in each organisation (and is one patient in Cliniko).
    orgs_of_patient: dict[str, set[int]] = {}
    for row in invoices:
        if row.status == "synced":
            orgs_of_patient.setdefault(row.parent_cliniko_id, set()).add(row.connection_id)
    both = [p for p, seen in orgs_of_patient.items() if seen == {first.id, second.id}]
    assert both, "the seeded clinic should have patients seen at both businesses"
    orgs = organisations(clinic)
    for patient in both:
        for name in (DEMO_ORG_NAME, SECOND_ORG_NAME):
            assert f"CLK-{patient}" in {c["ContactNumber"] for c in orgs[name]["contacts"]}

    # New activity, recorded but not sent yet; then business B is routed to the first organisation.
    before_second = {i["InvoiceNumber"] for i in orgs[SECOND_ORG_NAME]["invoices"]}
    clinic.cliniko("POST", "activity", json={"new_invoices": 30, "payments": 20})
    poll(clinic.practice.id)
    routing.assign(clinic.practice.id)
    db.session.commit()
    pending_b = [r for r in clinic.rows("invoice") if business_of(r) == b and r.xero_id is None
                 and r.status in routing.MOVABLE]
    synced_b = [r for r in clinic.rows("invoice") if business_of(r) == b and r.status == "synced"]
    assert pending_b and synced_b
    assert all(r.connection_id == second.id for r in pending_b)

    moved = routing.set_route(clinic.practice, b, first.id, None)
    assert moved.invoices == len(pending_b)
    rows = {r.id: r for r in clinic.rows()}
    assert all(rows[r.id].connection_id == first.id for r in pending_b)
    assert all(rows[r.id].connection_id == second.id for r in synced_b)  # synced rows stay
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "routing.change")).all()
    assert audit[-1].details["moved"]["invoices"] == len(pending_b)

    drain(clinic.practice.id, timeout=180)
    assert_each_org_holds_exactly_its_rows(clinic, conns)
    orgs = organisations(clinic)
    first_numbers = {i["InvoiceNumber"] for i in orgs[DEMO_ORG_NAME]["invoices"]}
    second_numbers = {i["InvoiceNumber"] for i in orgs[SECOND_ORG_NAME]["invoices"]}
    assert {r.invoice_number for r in pending_b if rows[r.id].status == "synced"} <= first_numbers
    assert second_numbers == before_second  # nothing new went to the second organisation
    assert not first_numbers & second_numbers
    # Payments of B's invoices synced earlier went to the organisation that holds them.
    paid_late = [r for r in clinic.rows("payment") if r.cliniko_id in {s.cliniko_id for s in synced_b}]
    assert all(r.connection_id == second.id for r in paid_late)


def test_a_pending_contact_follows_its_invoices(two_orgs):
    """Rows recorded before any push: moving a business moves its invoices, their payments and the contacts
    no other invoice of the old organisation needs; nothing is sent to the old organisation."""
    from webapp.sync import routing
    from webapp.sync.backfill import run, start
    from webapp.sync.catalogue import lookup
    from webapp.sync_cli import drain

    clinic = two_orgs
    conns = connections(clinic.practice.id)
    first, second = conns[DEMO_ORG_NAME], conns[SECOND_ORG_NAME]
    businesses = sorted(lookup(clinic.practice.id, "business"), key=int)
    backfill = start(clinic.practice, date.today() - timedelta(days=400), None)
    db.session.commit()
    run(backfill.id)
    routing.assign(clinic.practice.id)
    db.session.commit()
    assert all(r.connection_id == first.id for r in clinic.rows())  # nothing routed yet: the default

    moved = routing.set_route(clinic.practice, businesses[1], second.id, None)
    assert moved.invoices > 0 and moved.contacts > 0
    rows = clinic.rows()
    only_b = {r.parent_cliniko_id for r in rows if r.kind == "invoice" and business_of(r) == businesses[1]} - {
        r.parent_cliniko_id for r in rows if r.kind == "invoice" and business_of(r) != businesses[1]}
    contacts = [r for r in rows if r.kind == "contact"]
    assert all(r.connection_id == second.id for r in contacts if r.cliniko_id in only_b)
    assert len({(r.cliniko_id, r.connection_id) for r in contacts}) == len(contacts)

    drain(clinic.practice.id, timeout=180)
    assert_each_org_holds_exactly_its_rows(clinic, conns)
    orgs = organisations(clinic)
    first_contacts = {c["ContactNumber"].removeprefix("CLK-") for c in orgs[DEMO_ORG_NAME]["contacts"]}
    assert not first_contacts & only_b  # no contact sent to an organisation that has none of its invoices


def test_dry_run_sends_nothing_and_the_reaper_leaves_it_alone(two_orgs):
    from webapp.sync.push import push
    from webapp.sync.reaper import practices_with_due_rows

    clinic = two_orgs
    clinic.practice.settings = {**clinic.practice.settings, "dry_run": True}
    db.session.add(SyncJob(practice_id=clinic.practice.id, kind="contact", cliniko_id="1",
                           source={"patient": {"id": "1", "first_name": "A", "last_name": "B"}}))
    db.session.commit()
    result = push(clinic.practice.id, "test")
    assert result.stopped == "dry run" and result.synced == 0
    assert practices_with_due_rows() == []
    clinic.practice.settings = {**clinic.practice.settings, "dry_run": False}
    db.session.commit()
    assert [p for p, _ in practices_with_due_rows()] == [clinic.practice.id]
