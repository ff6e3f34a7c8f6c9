"""A paid Cliniko invoice → one Xero Payment for the amount due, dated in the business's time zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webapp.sync.mapping_common import (
    ZERO,
    MappingError,
    as_decimal,
    business_name,
    clean_text,
    local_date,
    money_text,
    person_name,
    round2,
    zone_of,
)
from webapp.sync.mapping_invoices import invoice_number
from webapp.sync.settings import Mappings, PracticeSettings, XeroRefs

REFERENCE_LIMIT = 255
_RECHECK = "then re-queue the row."


@dataclass(frozen=True)
class PaymentPlan:
    """The Xero Payment JSON and the rule behind each field."""

    payload: dict
    reasons: list[dict] = field(default_factory=list)


def payment_reference(settings: PracticeSettings, number: Any) -> str:
    """The payment's Reference, its natural key in Xero: "Cliniko invoice " + the Xero invoice number."""
    return f"Cliniko invoice {invoice_number(settings, number)}"[:REFERENCE_LIMIT]


def plan_payment(invoice: dict, *, invoice_xero_id: str | None, amount_due: Any, business: dict | None,
                 practitioner: dict | None, settings: PracticeSettings, mappings: Mappings,
                 refs: XeroRefs | None = None) -> PaymentPlan:
    """Plan the Xero payment that settles a paid Cliniko invoice; MappingError when it cannot be made."""
    invoice = invoice if isinstance(invoice, dict) else {}
    reference = payment_reference(settings, invoice.get("number"))
    if not invoice_xero_id:
        raise MappingError("mapping", f"The invoice for '{reference}' is not in Xero yet, so it cannot be paid there.",
                           f"Sync the invoice first, {_RECHECK}")
    amount = as_decimal(amount_due)
    if amount is None:
        raise MappingError("mapping", "Xero did not say how much is owing on the invoice.",
                           f"Refresh the invoice from Xero, {_RECHECK}")
    amount = round2(amount)
    if amount <= ZERO:
        raise MappingError("conflict", f"Nothing is owing on the invoice in Xero ({money_text(amount)} due); it may "
                           "already have been paid there.", "Check the invoice's payments in Xero; if it is paid, "
                           "mark this row ignored.")
    closed_at = invoice.get("closed_at")
    if not isinstance(closed_at, datetime):
        raise MappingError("mapping", "The invoice is paid in Cliniko but has no closed date ('closed_at'), so the "
                           "payment date is unknown.", f"Open the invoice in Cliniko and check its payment, {_RECHECK}")
    zone, zone_rule = zone_of(business, settings.time_zone)
    paid_on = local_date(closed_at, zone)
    reasons: list[dict] = [
        {"field": "Amount", "value": amount, "rule": "the amount due on the invoice in Xero"},
        {"field": "Date", "value": paid_on.isoformat() if paid_on else None,
         "rule": f"Cliniko closed_at {closed_at.isoformat()} in the {zone_rule}"},
        {"field": "Reference", "value": reference, "rule": "'Cliniko invoice ' + invoice number (the natural key)"},
    ]
    code, rule = _payment_account(invoice, business, practitioner, settings, mappings)
    if refs is not None:
        problem = refs.account_problem(code)
        if problem:
            raise MappingError("mapping", f"Payment account {code}, chosen by the {rule}, {problem}.",
                               f"Choose an active payment account ({rule}) in Mappings or Settings, {_RECHECK}")
    reasons.append({"field": "Account", "value": code, "rule": rule})
    payload = {
        "Invoice": {"InvoiceID": str(invoice_xero_id)},
        "Account": {"Code": code},
        "Date": paid_on.isoformat() if paid_on else None,
        "Amount": amount,
        "Reference": reference,
    }
    return PaymentPlan(payload=payload, reasons=reasons)


def _payment_account(invoice: dict, business: dict | None, practitioner: dict | None, settings: PracticeSettings,
                     mappings: Mappings) -> tuple[str, str]:
    row = mappings.get("practitioner", invoice.get("practitioner_id"))
    if row is not None and row.payment_account_code:
        name = clean_text(row.cliniko_name) or person_name(practitioner) or f"#{row.cliniko_id}"
        return row.payment_account_code, f"practitioner '{name}' override"
    row = mappings.get("business", invoice.get("business_id"))
    if row is not None and row.payment_account_code:
        name = clean_text(row.cliniko_name) or business_name(business) or f"#{row.cliniko_id}"
        return row.payment_account_code, f"business '{name}' override"
    if not settings.payment_account:
        raise MappingError("mapping", "No Xero account to receive the payment: no override applies and no default "
                           "payment account is set.", f"Choose a default payment account in Settings, {_RECHECK}")
    return settings.payment_account, "default payment account"

