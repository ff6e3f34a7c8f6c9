"""From a job row's Cliniko snapshot to the exact Xero payload (the one place mapping meets rows)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from webapp.sync import mapping_appointments
from webapp.sync.context import PracticeContext
from webapp.sync.mapping_common import MappingError, sha256_of
from webapp.sync.mapping_contacts import contact_number, contact_payload
from webapp.sync.mapping_invoices import SkipPlan, plan_invoice
from webapp.sync.mapping_payments import payment_reference, plan_payment
from webapp.sync.snapshot import from_json


@dataclass
class Built:
    """A payload ready to send (or None), with the reasons behind each choice."""

    payload: dict | None
    reasons: list
    skip: str | None = None
    error: MappingError | None = None
    #: Identity of the Xero contact independent of how it is referenced (ContactID once known,
    #: ContactNumber before), so the hash is the same at discovery and at push.
    contact_key: str | None = None
    #: The Cliniko invoice as read from the snapshot (kept so a caller need not parse it again).
    invoice: dict | None = None

    @property
    def hash(self) -> str | None:
        if self.payload is None:
            return None
        if self.contact_key is None:
            return sha256_of(self.payload)
        return sha256_of({**{k: v for k, v in self.payload.items() if k != "Contact"}, "_contact": self.contact_key})


def contact(ctx: PracticeContext, source: dict) -> Built:
    """The Xero contact for a contact row."""
    plan = contact_payload(from_json(source.get("patient")), ctx.settings)
    return Built(plan.payload, list(getattr(plan, "reasons", []) or []))


def _invoice_parts(ctx: PracticeContext, source: dict):
    invoice = from_json(source.get("invoice")) or {}
    items = from_json(source.get("items")) or []
    patient = from_json(source.get("patient"))
    return invoice, items, patient, *_where(ctx, invoice)


def _where(ctx: PracticeContext, invoice: dict) -> tuple[dict | None, dict | None]:
    """The invoice's practitioner and business records."""
    practitioner = ctx.practitioners.get(str(invoice.get("practitioner_id")))
    return practitioner, ctx.businesses.get(str(invoice.get("business_id")))


def invoice(ctx: PracticeContext, source: dict, contact_id: str | None = None) -> Built:
    """The Xero invoice for an invoice row; ContactID when known, else the ContactNumber."""
    if source.get("invoiced_by_appointment"):  # appointment mode already put this visit in Xero
        return Built(None, [], skip=str(source["invoiced_by_appointment"]))
    invoice_rec, items, patient, practitioner, business = _invoice_parts(ctx, source)
    try:
        contact_ref = {"ContactID": contact_id} if contact_id else (
            {"ContactNumber": contact_number(ctx.settings, invoice_rec["patient_id"])}
            if invoice_rec.get("patient_id") else None)
        plan = plan_invoice(
            invoice_rec, items, patient=patient, practitioner=practitioner, business=business,
            appointment=from_json(source.get("appointment")), settings=ctx.settings, mappings=ctx.mappings,
            refs=ctx.refs, contact_id_or_number=contact_ref,
        )
    except MappingError as exc:
        return Built(None, [], error=exc)
    except ArithmeticError as exc:  # e.g. an amount like 1e400 that no ledger can hold
        return Built(None, [], error=MappingError(
            "totals", f"An amount on this invoice cannot be used ({type(exc).__name__}).",
            "Check the invoice's amounts in Cliniko."))
    if isinstance(plan, SkipPlan):
        return Built(None, [], skip=plan.reason)
    return Built(plan.payload, list(plan.reasons), contact_key=str(invoice_rec.get("patient_id")), invoice=invoice_rec)


def appointment(ctx: PracticeContext, source: dict, contact_id: str | None = None) -> Built:
    """The Xero invoice for an appointment row (appointment mode): the skip or pricing problem found when
    the appointment was read, else the invoice mapping of the priced appointment (never "only paid")."""
    if source.get("skip"):
        return Built(None, [], skip=str(source["skip"]))
    appt = from_json(source.get("appointment")) or {}
    kind = source.get("appointment_type") or {}
    labels = mapping_appointments.Catalogue(
        appointment_types={str(kind.get("id")): kind}, businesses=ctx.businesses)
    reason = mapping_appointments.settings_skip(appt, ctx.settings, labels)
    if reason:
        return Built(None, [], skip=reason)
    problem = source.get("problem")
    if problem:
        return Built(None, [], error=MappingError("mapping", problem.get("reason") or "The appointment cannot be "
                                                  "priced.", problem.get("fix") or "Check it in Cliniko."))
    if source.get("invoiced_in_cliniko"):
        return Built(None, [], skip=str(source["invoiced_in_cliniko"]))
    unfiltered = replace(ctx, settings=replace(ctx.settings, only_paid=False))
    return invoice(unfiltered, source, contact_id)


def invoice_for_row(ctx: PracticeContext, row, contact_id: str | None = None) -> Built:
    """The Xero invoice for an `invoice` or an `appointment` row."""
    build = appointment if row.kind == "appointment" else invoice
    return build(ctx, row.source or {}, contact_id)


def payment(ctx: PracticeContext, source: dict, invoice_xero_id: str, amount_due) -> Built:
    """The Xero payment for a payment row."""
    invoice_rec = from_json(source.get("invoice")) or {}  # a payment needs neither the items nor the patient
    practitioner, business = _where(ctx, invoice_rec)
    try:
        plan = plan_payment(
            invoice_rec, invoice_xero_id=invoice_xero_id, amount_due=amount_due, business=business,
            practitioner=practitioner, settings=ctx.settings, mappings=ctx.mappings,
        )
    except MappingError as exc:
        return Built(None, [], error=exc)
    return Built(plan.payload, list(plan.reasons))


def reference_for(ctx: PracticeContext, number) -> str:
    """The payment Reference (natural key) for a Cliniko invoice number."""
    return payment_reference(ctx.settings, number)
