"""The engine end to end: a seeded clinic backfilled into sandbox Xero, exactly once, totals to the cent;
problem invoices fail with a clear reason, and fixing the cause then re-queueing syncs them."""

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.support.engine import audit_xero_against_cliniko, wire_clinic
from webapp.extensions import db
from webapp.models import ClinikoRecord, Mapping, SyncAttempt

ARCHIVED_ACCOUNT = "250"  # "Consulting Revenue (old)" in sandbox Xero's chart


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=3, patients=120, invoices=500),
                     xero_sandbox) as clinic:
        yield clinic


def settled(rows):
    """Every row ends synced, failed (with a reason), skipped or ignored; payments may wait on a failed invoice."""
    invoices = {r.cliniko_id: r for r in rows if r.kind == "invoice"}
    for row in rows:
        if row.status == "waiting" and row.kind == "payment":
            assert invoices[row.cliniko_id].status == "failed"
            continue
        assert row.status in ("synced", "failed", "skipped", "ignored"), (row.kind, row.status, row.status_reason)
        if row.status == "failed":
            assert row.error_category and row.failure_reason
        if row.status == "skipped":
            assert row.status_reason


def test_backfill_then_fix_and_requeue(clinic, runner):
    item = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == clinic.practice.id, ClinikoRecord.kind == "billable_item",
        ClinikoRecord.name == "Standard Consultation")).one()
    mapping = Mapping(practice_id=clinic.practice.id, kind="billable_item", cliniko_id=item.cliniko_id,
                      cliniko_name=item.name, account_code=ARCHIVED_ACCOUNT)
    db.session.add(mapping)
    db.session.commit()

    since = (date.today() - timedelta(days=400)).isoformat()
    result = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait",
                                 "--timeout", "240"])
    assert result.exit_code == 0, result.output
    assert '"state": "done"' in result.output
    counts = audit_xero_against_cliniko(clinic)
    rows = clinic.rows()
    settled(rows)
    print(Counter((r.kind, r.status, r.error_category) for r in rows))
    mapped = [r for r in rows if r.kind == "invoice" and r.error_category == "mapping"]
    assert mapped, "invoices with the archived-account item should fail with a mapping error"
    assert all(ARCHIVED_ACCOUNT in r.failure_reason and "archived" in r.failure_reason for r in mapped)
    assert all(r.suggested_fix for r in mapped)
    totals = [r for r in rows if r.error_category == "totals"]
    assert all(r.failure_reason.startswith("Totals differ: Cliniko $") for r in totals)
    assert counts["invoices"] >= 300 and counts["payments"] >= 300

    # Fix the cause (an active account), re-queue the mapping failures, send again.
    mapping.account_code = "260"
    db.session.commit()
    result = runner.invoke(args=["sync", "requeue", clinic.practice.slug, "--category", "mapping"])
    assert f"Re-queued {len(mapped)} rows" in result.output
    from webapp.sync_cli import drain

    drain(clinic.practice.id, timeout=120)
    rows = clinic.rows()
    settled(rows)
    fixed = {r.cliniko_id for r in mapped}
    refixed = [r for r in rows if r.kind == "invoice" and r.cliniko_id in fixed]
    # Each is now in Xero, unless it has a second, independent problem (an unmapped 15% tax → totals).
    assert all(r.status == "synced" or r.error_category == "totals" for r in refixed)
    now_synced = [r for r in refixed if r.status == "synced"]
    assert len(now_synced) >= len(mapped) * 0.8
    after = audit_xero_against_cliniko(clinic)
    assert after["invoices"] == counts["invoices"] + len(now_synced)
    # What was sent for them now uses the active account.
    sent = db.session.scalars(select(SyncAttempt).where(
        SyncAttempt.job_id.in_([r.id for r in now_synced]), SyncAttempt.outcome == "synced")).all()
    accounts = {li.get("AccountCode") for a in sent for li in a.request_body["LineItems"]}
    assert "260" in accounts and ARCHIVED_ACCOUNT not in accounts

    # Every contact in Xero is recorded with the ContactID and the name it was given.
    from webapp.models import Contact

    recorded = {c.cliniko_patient_id: c for c in db.session.scalars(select(Contact))}
    synced_contacts = [r for r in rows if r.kind == "contact" and r.status == "synced"]
    assert len(recorded) == len(synced_contacts)
    assert all(recorded[r.cliniko_id].xero_contact_id == r.xero_id and recorded[r.cliniko_id].name_used
               for r in synced_contacts)

    status = runner.invoke(args=["sync", "status", clinic.practice.slug, "--json"])
    assert '"invoice"' in status.output and '"synced"' in status.output


def test_backfill_again_duplicates_nothing(clinic, runner):
    since = (date.today() - timedelta(days=400)).isoformat()
    first = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
    assert first.exit_code == 0, first.output
    before = audit_xero_against_cliniko(clinic)
    calls_before = clinic.xero_org()["calls"]["admitted"]
    second = runner.invoke(args=["sync", "backfill", clinic.practice.slug, "--since", since, "--wait"])
    assert second.exit_code == 0, second.output
    assert audit_xero_against_cliniko(clinic) == before
    # Unchanged rows are not sent again: no write calls beyond the token/read overhead.
    assert clinic.xero_org()["calls"]["admitted"] - calls_before <= 2
