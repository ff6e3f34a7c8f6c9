"""Live sync: clinic activity in sandbox Cliniko reaches Xero on the next poll with the right follow-ups."""

from datetime import date, datetime, timedelta

import pytest

from tests.support.engine import audit_xero_against_cliniko, money, wire_clinic
from webapp.extensions import db
from webapp.models import Practice
from webapp.sync.discovery import poll
from webapp.sync_cli import drain


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox, runner):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=11, patients=40, invoices=120),
                     xero_sandbox) as clinic:
        since = (date.today() - timedelta(days=400)).isoformat()
        result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
        assert result.exit_code == 0, result.output
        yield clinic


def xero_invoices(clinic):
    return {i["InvoiceNumber"]: i for i in clinic.xero_org()["invoices"]}


def test_activity_reaches_xero_with_the_right_followups(clinic):
    # Start polling from the emulator's "now", as a practice switched on today would.
    now = clinic.cliniko("GET", "clock")["now"]
    clinic.practice.poll_cursors = {"invoices": datetime.fromisoformat(now.replace("Z", "+00:00")).isoformat()}
    db.session.commit()
    before = {r.cliniko_id: r.status for r in clinic.rows("invoice")}
    done = clinic.cliniko("POST", "activity", json={"new_invoices": 6, "payments": 4, "deletes": 2, "reopens": 2,
                                                     "edits": 3})
    counts = poll(clinic.practice.id)
    assert counts.created >= 6
    drain(clinic.practice.id, timeout=120)
    audit_xero_against_cliniko(clinic)

    rows = {(r.kind, r.cliniko_id): r for r in clinic.rows()}
    xero = xero_invoices(clinic)
    for cid in done["new_invoices"]:
        row = rows[("invoice", cid)]
        assert row.status in ("synced", "failed", "skipped"), row.status
        if row.status == "synced":
            assert row.invoice_number in xero
    for cid in done["payments"]:
        invoice = rows[("invoice", cid)]
        if invoice.status == "synced":
            payment = rows[("payment", cid)]
            assert payment.status == "synced"
            live = [p for p in xero[invoice.invoice_number]["payments"] if p["Status"] != "DELETED"]
            assert [money(p["Amount"]) for p in live] == [money(invoice.amount)]
    for cid in done["deletes"]:
        invoice = rows[("invoice", cid)]
        if before.get(cid) == "synced":
            assert rows[("void", cid)].status == "synced"
            assert xero[invoice.invoice_number]["Status"] == "VOIDED"
            assert not [p for p in xero[invoice.invoice_number]["payments"] if p["Status"] != "DELETED"]
        else:
            assert invoice.status in ("skipped", "failed")
    for cid in done["reopens"]:
        invoice = rows[("invoice", cid)]
        had_payment = ("payment", cid) in rows and rows[("payment", cid)].xero_id
        if had_payment and invoice.status == "synced":
            assert rows[("payment_delete", cid)].status == "synced"
            assert not [p for p in xero[invoice.invoice_number]["payments"] if p["Status"] != "DELETED"]
    for cid in done["edits"]:
        invoice = rows[("invoice", cid)]
        # An edit either reached Xero, or Xero refused it (paid) and says why in plain words.
        assert invoice.status in ("synced", "failed", "skipped")
        if invoice.status == "failed":
            assert invoice.failure_reason and invoice.suggested_fix


def test_unchanged_poll_sends_nothing(clinic):
    now = clinic.cliniko("GET", "clock")["now"]
    clinic.practice.poll_cursors = {"invoices": datetime.fromisoformat(now.replace("Z", "+00:00")).isoformat()}
    db.session.commit()
    calls = clinic.xero_org()["calls"]["admitted"]
    counts = poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=30)
    assert counts.created == 0 and counts.updated == 0
    assert clinic.xero_org()["calls"]["admitted"] == calls


def test_a_practice_switched_on_today_reads_every_change_after_its_first_poll(clinic):
    """No sync-from date and nothing changed at the first poll: the cursor is still stored, so an invoice
    created between two polls is read by the second (it used to start each poll at its own "now")."""
    practice = db.session.get(Practice, clinic.practice.id)
    practice.poll_cursors = {}
    practice.settings = {k: v for k, v in practice.settings.items() if k != "sync_from"}
    db.session.commit()
    poll(clinic.practice.id)
    assert db.session.get(Practice, clinic.practice.id).poll_cursors.get("invoices")
    done = clinic.cliniko("POST", "activity", json={"new_invoices": 3})
    poll(clinic.practice.id)
    found = {r.cliniko_id for r in clinic.rows("invoice")}
    assert set(done["new_invoices"]) <= found
