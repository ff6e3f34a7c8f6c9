"""Change detection: one `invoice` row per Cliniko invoice, its contact, and the follow-up rows
(payment, payment_delete, void) that its status calls for (SPEC §7)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from webapp.extensions import db
from webapp.models import SyncJob, utcnow
from webapp.sync import plans, states
from webapp.sync.context import PracticeContext
from webapp.sync.mapping_common import sha256_of
from webapp.sync.mapping_contacts import patient_name
from webapp.sync.snapshot import from_json, to_json

logger = logging.getLogger(__name__)

PAID, OPEN, CLOSED, OPEN_CREDIT = 20, 10, 30, 40
NAME_FIELDS = ("id", "title", "first_name", "last_name", "preferred_first_name", "updated_at")
EMAIL_FIELDS = ("email",)
FULL_FIELDS = ("patient_phone_numbers", "address_1", "address_2", "address_3", "city", "state", "post_code",
               "country")
UNSETTLED = ("pending", "retrying", "waiting", "failed")
CANCELLED = "Backfill cancelled"


@dataclass
class Counts:
    """What one batch of discovered invoices changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    followups: int = 0

    def add(self, other: Counts) -> None:
        for name in ("created", "updated", "unchanged", "followups"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def minimal_patient(patient: dict | None, contact_details: str) -> dict | None:
    """Only the patient fields the chosen contact details need (data minimisation)."""
    if not patient:
        return None
    keep = NAME_FIELDS + (EMAIL_FIELDS if contact_details in ("email", "full") else ()) + (
        FULL_FIELDS if contact_details == "full" else ())
    return {k: patient.get(k) for k in keep if k in patient}


def _status(invoice: dict) -> int | None:
    try:
        return int(invoice.get("status"))
    except (TypeError, ValueError):
        return None


def _rows(practice_id: int, kind: str, cliniko_ids: list[str]) -> dict[str, SyncJob]:
    if not cliniko_ids:
        return {}
    rows = db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind == kind, SyncJob.cliniko_id.in_(cliniko_ids)))
    return {r.cliniko_id: r for r in rows}


def _ensure_rows(practice_id: int, kind: str, values: list[dict]) -> dict[str, SyncJob]:
    """Insert missing rows (ON CONFLICT DO NOTHING, so concurrent discovery is safe); return all by id.

    Contact rows are one per (patient, organisation): they conflict on uq_sync_jobs_contact and are
    returned for the organisation of the values (all values of one call share it); other kinds conflict on
    uq_sync_jobs_row. A row without an organisation gets one here when that is already known: the
    practice's only organisation, or for a payment removal or void, its invoice's (else
    webapp.sync.routing.assign routes it after discovery)."""
    from webapp.sync import routing

    if values and any(v.get("connection_id") is None for v in values):
        _route_values(practice_id, kind, values, routing)
    if values:
        stmt = insert(SyncJob).values(values)
        if kind == "contact":
            stmt = stmt.on_conflict_do_nothing(index_elements=["practice_id", "cliniko_id", "connection_id"],
                                               index_where=text("kind = 'contact'"))
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["practice_id", "kind", "cliniko_id"],
                                               index_where=text("kind <> 'contact'"))
        db.session.execute(stmt)
    if kind == "contact":
        ids = [v["cliniko_id"] for v in values]
        if not ids:
            return {}
        connection_id = values[0].get("connection_id")
        rows = db.session.scalars(select(SyncJob).where(
            SyncJob.practice_id == practice_id, SyncJob.kind == "contact", SyncJob.cliniko_id.in_(ids),
            SyncJob.connection_id.is_(None) if connection_id is None else SyncJob.connection_id == connection_id))
        return {r.cliniko_id: r for r in rows}
    return _rows(practice_id, kind, [v["cliniko_id"] for v in values])


def _route_values(practice_id: int, kind: str, values: list[dict], routing) -> None:
    """Fill in the organisation of new rows when it is known now (see _ensure_rows)."""
    only = routing.single_connection_id(practice_id)
    parents: dict[str, int | None] = {}
    if kind in ("void", "payment_delete", "payment"):
        parents = dict(db.session.execute(select(SyncJob.cliniko_id, SyncJob.connection_id).where(
            SyncJob.practice_id == practice_id, SyncJob.kind.in_(("appointment", "invoice")),
            SyncJob.cliniko_id.in_([v["cliniko_id"] for v in values])).order_by(SyncJob.kind)).all())
    for value in values:
        if value.get("connection_id") is None:
            value["connection_id"] = parents.get(value["cliniko_id"]) or only


def _new(practice_id: int, kind: str, cliniko_id: str, **fields) -> dict:
    now = utcnow()
    base = {"practice_id": practice_id, "kind": kind, "cliniko_id": cliniko_id, "status": "pending",
            "attempts": 0, "max_attempts": 12, "next_attempt_at": now, "priority": 0, "reconcile": False,
            "created_at": now, "updated_at": now}
    base.update(fields)
    return base


def upsert_contacts(ctx: PracticeContext, patients: dict[str, dict | None], patient_ids: list[str],
                    priority: int = 0) -> None:
    """Keep every contact row of these patients (one per organisation) up to date; a changed contact that
    is already in Xero is sent again. A new patient gets one row, for the practice's organisation when it
    has one, else routed with its invoices (webapp.sync.routing.assign)."""
    ids = sorted({str(p) for p in patient_ids if p})
    if not ids:
        return
    existing: dict[str, list[SyncJob]] = {}
    for row in db.session.scalars(select(SyncJob).where(
            SyncJob.practice_id == ctx.practice_id, SyncJob.kind == "contact", SyncJob.cliniko_id.in_(ids))):
        existing.setdefault(row.cliniko_id, []).append(row)
    missing = [pid for pid in ids if pid not in existing]
    if missing:
        made = _ensure_rows(ctx.practice_id, "contact", [
            _new(ctx.practice_id, "contact", pid, priority=priority, status="pending") for pid in missing])
        for pid, row in made.items():
            existing.setdefault(pid, []).append(row)
    for pid in ids:
        patient = minimal_patient(patients.get(pid), ctx.settings.contact_details)
        for row in existing.get(pid, []):
            if patient is None and row.source:
                continue  # the patient was not readable now (deleted); keep what we had
            source = {"patient": to_json(patient or {"id": pid})}
            built = plans.contact(ctx, source)
            row.patient_name = (built.payload or {}).get("Name") or row.patient_name
            row.source = source
            row.payload_hash = built.hash
            if row.status == "synced" and row.sent_hash and row.payload_hash != row.sent_hash:
                states.resend(row)


def _invoice_fields(ctx: PracticeContext, invoice: dict, patient: dict | None) -> dict:
    number = invoice.get("number")
    return {
        "invoice_number": f"{ctx.settings.invoice_number_prefix}{number}" if number is not None else None,
        "patient_name": (patient_name(patient)[0] if patient else None) or None,
        "amount": _storable(invoice.get("total_amount")),
        "issue_date": _midnight(invoice.get("issue_date")),
        "source_updated_at": invoice.get("updated_at"),
        "parent_cliniko_id": invoice.get("patient_id"),
    }


def _storable(amount):
    """The amount if a ledger column can hold it (absurd values are left out; the row fails on mapping)."""
    try:
        return amount if amount is not None and abs(Decimal(amount)) < Decimal(10) ** 12 else None
    except ArithmeticError:
        return None


def _midnight(value):
    from datetime import UTC, date, datetime, time

    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value


def upsert_invoices(ctx: PracticeContext, invoices: list[dict], items_by_invoice: dict[str, list[dict]],
                    patients: dict[str, dict | None], priority: int = 0, backfill_id: int | None = None) -> Counts:
    """Create or update the invoice rows of discovered invoices and their follow-ups. Caller commits."""
    counts = Counts()
    patient_ids = [i.get("patient_id") for i in invoices if not (i.get("deleted_at") or i.get("archived_at"))]
    upsert_contacts(ctx, patients, patient_ids, priority=priority)
    ids = [str(i["id"]) for i in invoices]
    existing = _rows(ctx.practice_id, "invoice", ids)
    new_values = [
        _new(ctx.practice_id, "invoice", str(i["id"]), priority=priority, backfill_id=backfill_id)
        for i in invoices if str(i["id"]) not in existing
    ]
    rows = _ensure_rows(ctx.practice_id, "invoice", new_values) | existing
    followups = followup_rows(ctx.practice_id, ids)
    by_appointment = _rows(ctx.practice_id, "appointment", sorted(
        {str(i["appointment_id"]) for i in invoices if i.get("appointment_id")}))
    with db.session.no_autoflush:
        for invoice in invoices:
            row = rows[str(invoice["id"])]
            sent = by_appointment.get(str(invoice.get("appointment_id") or ""))
            try:
                _upsert_one(ctx, invoice, row, items_by_invoice, patients, followups, counts,
                            sent if sent is not None and sent.xero_id else None)
            except Exception as exc:  # one unreadable invoice must not block the page or the cursor
                logger.exception("invoice %s of practice %s could not be read", row.cliniko_id, ctx.practice_id)
                _unreadable(row, exc)
    return counts


def _unreadable(row: SyncJob, exc: Exception, what: str = "invoice") -> None:
    row.source = row.source if row.source is not None else {}
    if row.status in ("pending", "retrying", "waiting"):
        states.fail_unreadable(row, f"Cliniko sent data for this {what} that could not be read "
                                    f"({type(exc).__name__}: {str(exc)[:300]}).",
                               f"Check the {what} in Cliniko and correct it; the next change to it is read again.")


def store_source(row: SyncJob, source: dict, new_hash: str, counts: Counts) -> bool:
    """Keep what was read and its payload hash on the row, count it; True when it is new or changed."""
    is_new = row.source is None
    changed = row.payload_hash != new_hash
    row.source = source
    row.payload_hash = new_hash
    if is_new:
        counts.created += 1
    elif changed:
        counts.updated += 1
    else:
        counts.unchanged += 1
    return is_new or changed


def _upsert_one(ctx, invoice, row, items_by_invoice, patients, followups, counts,
                appointment_row: SyncJob | None = None) -> None:
    """Update one invoice row from what Cliniko says now, then its follow-ups."""
    patient = patients.get(str(invoice.get("patient_id")))
    source = {
        "invoice": to_json(invoice),
        "items": to_json(items_by_invoice.get(str(invoice["id"]), [])),
        "patient": to_json(minimal_patient(patient, "name")),
    }
    if appointment_row is not None and row.xero_id is None:
        source["invoiced_by_appointment"] = (
            f"The appointment of this invoice is already in Xero as {appointment_row.invoice_number} "
            "(invoiced from the completed appointment); it is not invoiced twice")
    built = plans.invoice(ctx, source)
    for name, value in _invoice_fields(ctx, invoice, patient).items():
        setattr(row, name, value)
    if store_source(row, source, built.hash or sha256_of(source), counts):
        _on_invoice_change(row, built)
    elif row.status == "skipped" and row.status_reason == CANCELLED and not built.skip:
        states.requeue(row)  # a cancelled backfill's row, discovered again
    counts.followups += apply_followups(ctx, row, followups.get(row.cliniko_id, {}))


def _on_invoice_change(row: SyncJob, built: plans.Built) -> None:
    if built.skip:
        if row.status in UNSETTLED:
            states.skip(row, built.skip)
        return
    if row.status == "skipped" and row.xero_id is None:
        states.requeue(row)  # a filter no longer excludes it
    elif row.status == "synced" and row.sent_hash != row.payload_hash:
        states.resend(row)  # edited after sync: update Xero
    elif row.status in ("failed", "ignored"):
        pass  # a person decides; a fix re-queues through requeue.py
    elif row.status == "retrying":
        row.next_attempt_at = min(row.next_attempt_at or utcnow(), utcnow())


def _deleted_reason(ctx: PracticeContext, invoice: dict) -> str | None:
    if invoice.get("deleted_at"):
        return "Deleted in Cliniko"
    if invoice.get("archived_at"):
        return "Archived in Cliniko"
    if _status(invoice) == CLOSED and ctx.settings.closed_policy == "void":
        return "Closed in Cliniko (practice setting: void closed invoices)"
    return None


FOLLOWUP_KINDS = ("payment", "payment_delete", "void")


def followup_rows(practice_id: int, cliniko_ids: list[str]) -> dict[str, dict[str, SyncJob]]:
    """{invoice id: {kind: row}} of the follow-up rows of many invoices, in one query."""
    result: dict[str, dict[str, SyncJob]] = {cid: {} for cid in cliniko_ids}
    if cliniko_ids:
        for row in db.session.scalars(select(SyncJob).where(
                SyncJob.practice_id == practice_id, SyncJob.cliniko_id.in_(cliniko_ids),
                SyncJob.kind.in_(FOLLOWUP_KINDS))):
            result.setdefault(row.cliniko_id, {})[row.kind] = row
    return result


def apply_followups(ctx: PracticeContext, invoice_row: SyncJob, siblings: dict[str, SyncJob] | None = None,
                    invoice: dict | None = None) -> int:
    """Create or move the payment / payment_delete / void rows the invoice's state calls for (`invoice`: the
    row's Cliniko invoice when the caller has already read it from the snapshot)."""
    if invoice is None:
        invoice = from_json((invoice_row.source or {}).get("invoice")) or {}
    if siblings is None:
        siblings = followup_rows(invoice_row.practice_id, [invoice_row.cliniko_id])[invoice_row.cliniko_id]
    pay, undo, void = siblings.get("payment"), siblings.get("payment_delete"), siblings.get("void")
    made = 0
    gone = _deleted_reason(ctx, invoice)
    in_xero = invoice_row.xero_id is not None and invoice_row.status in ("synced", "pending", "retrying", "failed")
    payment_live = pay is not None and pay.status == "synced" and not (
        undo is not None and undo.status == "synced" and (undo.source or {}).get("payment_id") == pay.xero_id)

    if gone:
        if invoice_row.xero_id is None:
            if invoice_row.status in UNSETTLED:
                states.skip(invoice_row, f"{gone} before it was sent to Xero")
            if pay is not None and pay.status in UNSETTLED:
                states.skip(pay, f"{gone} before the payment was sent to Xero")
            return made
        if pay is not None and pay.status in UNSETTLED:
            states.skip(pay, f"{gone}; the payment was not sent")
        if payment_live:
            made += _ensure_payment_delete(invoice_row, pay, undo, f"{gone}: remove our payment before voiding")
        if void is None:
            value = _new(invoice_row.practice_id, "void", invoice_row.cliniko_id, status="pending",
                         invoice_number=invoice_row.invoice_number, patient_name=invoice_row.patient_name,
                         amount=invoice_row.amount, parent_cliniko_id=invoice_row.cliniko_id,
                         priority=invoice_row.priority, status_reason=gone)
            void = _ensure_rows(invoice_row.practice_id, "void", [value])[invoice_row.cliniko_id]
            made += 1
        elif void.status in ("skipped",):
            states.requeue(void)
        if payment_live and void.status == "pending":
            states.wait(void, "Waiting for our payment to be removed from the Xero invoice")
        elif not payment_live and void.status == "waiting":
            states.release_waiting(void)  # the payment is gone: the invoice can be voided now
        return made

    if void is not None and void.status in ("pending", "waiting", "retrying", "failed"):
        states.skip(void, "Restored in Cliniko before it was voided")

    paid = _status(invoice) == PAID
    owed = _storable(invoice.get("total_amount"))
    if paid and owed is not None and owed <= 0:
        # Paid with nothing owing (a zero or fully discounted invoice): Xero needs no payment.
        if pay is not None and pay.status in UNSETTLED:
            states.skip(pay, "Nothing is owed on this invoice, so no payment is recorded in Xero")
    elif paid:
        if pay is None:
            # Added to the session and inserted with the page in one statement. A concurrent pass
            # inserting the same row makes this page's commit fail; it is read again next poll.
            # It goes to its invoice's organisation (as webapp.sync.routing.assign would route it later).
            pay = SyncJob(**_new(invoice_row.practice_id, "payment", invoice_row.cliniko_id,
                                 invoice_number=invoice_row.invoice_number, patient_name=invoice_row.patient_name,
                                 amount=_storable(invoice.get("total_amount")) or Decimal("0"),
                                 parent_cliniko_id=invoice_row.cliniko_id, priority=invoice_row.priority,
                                 backfill_id=invoice_row.backfill_id, issue_date=invoice_row.issue_date,
                                 connection_id=invoice_row.connection_id if invoice_row.kind == "invoice" else None))
            db.session.add(pay)
            siblings["payment"] = pay
            made += 1
        elif pay.status == "skipped" or (pay.status == "synced" and not payment_live):
            # Paid again after a reopen (or after we removed it): a new payment is needed.
            pay.reconcile = True
            (states.requeue if pay.status == "skipped" else states.resend)(pay)
        if undo is not None and undo.status in ("pending", "waiting", "retrying", "failed"):
            states.skip(undo, "Paid again in Cliniko before the payment was removed")
        pay.amount = _storable(invoice.get("total_amount")) or pay.amount
        pay.source = {"invoice": (invoice_row.source or {}).get("invoice")}
        if pay.status == "pending" and not in_xero:
            states.wait(pay, "Waiting for the invoice to be in Xero")
        elif pay.status == "waiting" and in_xero and invoice_row.status == "synced":
            states.release_waiting(pay)
    elif pay is not None:
        if pay.status in UNSETTLED:
            states.skip(pay, "Reopened in Cliniko before the payment was sent")
        elif payment_live:
            made += _ensure_payment_delete(invoice_row, pay, undo, "Reopened in Cliniko: payment removed")
    return made


def _ensure_payment_delete(invoice_row: SyncJob, pay: SyncJob, undo: SyncJob | None, reason: str) -> int:
    if undo is None:
        value = _new(invoice_row.practice_id, "payment_delete", invoice_row.cliniko_id,
                     invoice_number=invoice_row.invoice_number, patient_name=invoice_row.patient_name,
                     amount=pay.amount, parent_cliniko_id=invoice_row.cliniko_id, priority=invoice_row.priority,
                     source={"payment_id": pay.xero_id}, status_reason=reason)
        _ensure_rows(invoice_row.practice_id, "payment_delete", [value])
        return 1
    if undo.status in ("synced", "skipped") and (undo.source or {}).get("payment_id") != pay.xero_id:
        undo.source = {"payment_id": pay.xero_id}
        (states.resend if undo.status == "synced" else states.requeue)(undo)
        undo.status_reason = reason
        return 1
    return 0


def release_waiting_invoices(practice_id: int, patient_ids: list[str], connection_id: int | None = None) -> int:
    """Contacts reached Xero: their invoices (and appointment invoices) that waited for them become
    pending (one query); with a connection, only those going to that organisation."""
    if not patient_ids:
        return 0
    query = select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind.in_(("invoice", "appointment")),
        SyncJob.status == "waiting", SyncJob.parent_cliniko_id.in_(patient_ids))
    if connection_id is not None:
        query = query.where(SyncJob.connection_id == connection_id)
    rows = db.session.scalars(query).all()
    for row in rows:
        states.release_waiting(row)
    return len(rows)
