"""Recovery paths: a dropped connection on an invoice batch, voiding a paid invoice, Xero refusing access."""

from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from tests.support.engine import audit_xero_against_cliniko, connect_practice, wire_clinic
from webapp import crypto
from webapp.extensions import db
from webapp.models import SyncAttempt, SyncJob, XeroConnection
from webapp.sync.discovery import poll
from webapp.sync_cli import drain


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=21, patients=30, invoices=60),
                     xero_sandbox) as clinic:
        yield clinic


def backfill(runner, clinic):
    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
    assert result.exit_code == 0, result.output


def test_dropped_connection_on_an_invoice_batch_is_adopted_not_resent(clinic, runner):
    # Xero saves the first invoice batch, then drops the connection before answering.
    clinic.xero("POST", "faults", json={"script": ["drop"], "methods": ["PUT"], "path_contains": "Invoices"})
    backfill(runner, clinic)
    assert clinic.xero("GET", "faults")["injected"].get("drop") == 1
    audit_xero_against_cliniko(clinic)
    ambiguous = db.session.scalars(select(SyncAttempt).where(SyncAttempt.outcome == "ambiguous")).all()
    assert ambiguous, "the dropped batch is recorded as an unclear outcome"
    rows = {r.id: r for r in clinic.rows("invoice")}
    assert all(rows[a.job_id].status in ("synced", "failed", "skipped") for a in ambiguous)


def test_deleting_a_paid_invoice_removes_our_payment_then_voids(clinic, runner):
    backfill(runner, clinic)
    paid = next(r for r in clinic.rows("payment") if r.status == "synced")
    invoice_row = next(r for r in clinic.rows("invoice") if r.cliniko_id == paid.cliniko_id)
    # Delete it in Cliniko (the record as Cliniko serves it, with deleted_at set).
    record = requests.get(f"{clinic.cliniko_url}/v1/invoices/{paid.cliniko_id}", auth=("sandbox-key-au1", ""),
                          headers={"User-Agent": "tests (tests@example.com)", "Accept": "application/json"},
                          timeout=10).json()
    now = clinic.cliniko("GET", "clock")["now"]
    record.update(deleted_at=now, updated_at=now)
    clinic.cliniko("POST", "load", json={"invoices": [record]})
    clinic.practice.poll_cursors = {"invoices": (datetime.now(UTC) - timedelta(days=1)).isoformat()}
    db.session.commit()
    poll(clinic.practice.id)
    drain(clinic.practice.id, timeout=60)
    rows = {(r.kind, r.cliniko_id): r for r in clinic.rows()}
    assert rows[("payment_delete", paid.cliniko_id)].status == "synced"
    assert rows[("void", paid.cliniko_id)].status == "synced"
    xero = {i["InvoiceNumber"]: i for i in clinic.xero_org()["invoices"]}[invoice_row.invoice_number]
    assert xero["Status"] == "VOIDED"
    assert not [p for p in xero["payments"] if p["Status"] != "DELETED"]


def test_xero_refusing_access_pauses_the_connection_and_reconnect_requeues(clinic, runner, web, app):
    connection = db.session.scalars(select(XeroConnection)).one()
    refresh = crypto.decrypt(connection.refresh_token_encrypted)
    # Revoked at Xero (e.g. someone disconnected the app in Xero's settings).
    revoked = requests.post(app.config["XERO_REVOKE_URL"], auth=("sandbox-client", "sandbox-secret"),
                            data={"token": refresh}, timeout=10)
    assert revoked.status_code == 200
    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
    assert "Xero" in result.output
    db.session.expire_all()
    connection = db.session.get(XeroConnection, connection.id)
    assert connection.status == "needs_reconnect"
    refused = [r for r in clinic.rows() if r.status == "failed"]
    assert refused and all(r.error_category == "auth" for r in refused)
    assert all("Reconnect Xero" in r.suggested_fix for r in refused)
    # Reconnecting re-queues what failed for that reason; the next push sends it.
    connect_practice(web, clinic.practice)
    db.session.expire_all()
    assert all(r.status == "pending" for r in db.session.scalars(select(SyncJob).where(
        SyncJob.id.in_([r.id for r in refused]))))
    drain(clinic.practice.id, timeout=60)
    audit_xero_against_cliniko(clinic)
    assert not [r for r in clinic.rows() if r.error_category == "auth"]


def test_waiting_rows_stranded_by_crossing_workers_are_released_by_the_reaper(clinic, runner):
    from webapp.sync import states
    from webapp.sync.reaper import release_stranded_waiting

    backfill(runner, clinic)
    invoice = next(r for r in clinic.rows("invoice") if r.status == "synced")
    payment = next(r for r in clinic.rows("payment") if r.cliniko_id == invoice.cliniko_id and r.status == "synced")
    # As if another worker had made it wait just as its invoice reached Xero.
    states.resend(payment)
    states.wait(payment, "Waiting for the invoice to be in Xero")
    db.session.commit()
    assert release_stranded_waiting() >= 1
    db.session.expire_all()
    assert db.session.get(SyncJob, payment.id).status == "pending"
