"""The reaper's release of stranded waiting rows with several Xero organisations: an invoice or appointment
invoice is released when its patient's contact is in Xero in the same organisation (not another one), a
payment when its invoice is in Xero."""

from __future__ import annotations

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import SyncJob, XeroConnection
from webapp.sync.reaper import release_stranded_waiting


def row(practice, kind, cliniko_id, connection, status, parent=None, xero_id=None):
    job = SyncJob(practice_id=practice.id, kind=kind, cliniko_id=cliniko_id, parent_cliniko_id=parent,
                  connection_id=connection.id if connection is not None else None, status=status, xero_id=xero_id,
                  status_reason="Waiting for the patient's contact to be in Xero" if status == "waiting" else None)
    db.session.add(job)
    return job


def test_waiting_rows_are_released_only_by_their_own_organisations_contact(make_practice):
    practice = make_practice("north")
    first = XeroConnection(practice_id=practice.id, tenant_id="t-1", tenant_name="First", status="active")
    second = XeroConnection(practice_id=practice.id, tenant_id="t-2", tenant_name="Second", status="active")
    db.session.add_all([first, second])
    db.session.flush()
    # Patient 1's contact is in Xero in the first organisation only; patient 2's is still waiting there.
    row(practice, "contact", "1", first, "synced", xero_id="C-1")
    row(practice, "contact", "1", second, "pending")
    row(practice, "contact", "2", first, "pending")
    row(practice, "contact", "3", None, "synced", xero_id="C-3")  # an unrouted contact (before routing)
    released = [
        row(practice, "appointment", "a-1", first, "waiting", parent="1"),
        row(practice, "invoice", "i-1", first, "waiting", parent="1"),
        row(practice, "invoice", "i-3", None, "waiting", parent="3"),
    ]
    kept = [
        row(practice, "appointment", "a-2", second, "waiting", parent="1"),  # contact not in Xero there
        row(practice, "invoice", "i-2", first, "waiting", parent="2"),
    ]
    # Payments: released when their invoice (or appointment invoice) is in Xero.
    row(practice, "invoice", "i-9", first, "synced", parent="1", xero_id="I-9")
    released.append(row(practice, "payment", "i-9", first, "waiting"))
    row(practice, "appointment", "a-9", first, "synced", parent="1", xero_id="I-A9")
    released.append(row(practice, "payment", "a-9", first, "waiting"))
    kept.append(row(practice, "payment", "i-2", first, "waiting"))
    db.session.commit()

    assert release_stranded_waiting() == len(released)
    db.session.expire_all()
    states = {r.id: r.status for r in db.session.scalars(select(SyncJob))}
    assert [states[r.id] for r in released] == ["pending"] * len(released)
    assert [states[r.id] for r in kept] == ["waiting"] * len(kept)
    assert release_stranded_waiting() == 0
