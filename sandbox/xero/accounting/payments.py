"""Payments: only on AUTHORISED documents, at most the amount due, into a payable account; deletion."""

import contextlib
import uuid
from decimal import Decimal

from sandbox.xero.accounting import render
from sandbox.xero.accounting.documents import check_lock_dates
from sandbox.xero.accounting.lines import resolve_account
from sandbox.xero.dates import parse_date, parse_iso_date
from sandbox.xero.money import ZERO, dec, round2, stored, to_decimal

ONLY_AUTHORISED = "Payments can only be made against Authorised documents."
EXCEEDS = "Payment amount exceeds the amount outstanding on this document"
DOC_NOT_FOUND = "The document with the supplied id was not found for this endpoint."
NO_ACCOUNT = "You must specify an Account code or Account ID for the payment"
ACCOUNT_NOT_PAYABLE = "Account type is invalid for making a payment to/from"
PAYMENT_TYPES = {
    "ACCREC": "ACCRECPAYMENT",
    "ACCPAY": "ACCPAYPAYMENT",
    "ACCRECCREDIT": "ARCREDITPAYMENT",
    "ACCPAYCREDIT": "APCREDITPAYMENT",
}


def _document(org, raw: dict, errors: list[str]) -> tuple[dict | None, str | None]:
    invoice, note = raw.get("Invoice"), raw.get("CreditNote")
    if isinstance(invoice, dict):
        key = invoice.get("InvoiceID") or invoice.get("InvoiceNumber")
        found = (
            org.invoices.get(str(invoice.get("InvoiceID") or "").lower())
            if invoice.get("InvoiceID")
            else (org.invoice_by_number(invoice["InvoiceNumber"]) if invoice.get("InvoiceNumber") else None)
        )
        if found is None:
            errors.append(DOC_NOT_FOUND if key else "Invoice must contain an InvoiceID or InvoiceNumber")
        return found, "invoice"
    if isinstance(note, dict):
        key = note.get("CreditNoteID") or note.get("CreditNoteNumber")
        found = org.find_credit_note(key) if key else None
        if found is None:
            errors.append(DOC_NOT_FOUND if key else "CreditNote must contain a CreditNoteID or CreditNoteNumber")
        return found, "credit_note"
    errors.append("You must specify either an Invoice, CreditNote, Prepayment or Overpayment for the payment")
    return None, None


def _failed(raw: dict, errors: list[str]) -> dict:
    view = {
        "PaymentID": render.ZERO_ID,
        "HasAccount": False,
        "HasValidationErrors": True,
        "StatusAttributeString": "ERROR",
        "ValidationErrors": [{"Message": m} for m in errors],
    }
    for key in ("Reference", "Date"):
        if isinstance(raw.get(key), str):
            view[key] = raw[key]
    with contextlib.suppress(ValueError):
        view["Amount"] = float(to_decimal(raw.get("Amount")))
    for key in ("Invoice", "CreditNote", "Account"):
        if isinstance(raw.get(key), dict):
            view[key] = {k: v for k, v in raw[key].items() if isinstance(v, str)}
    return view


def create(ctx, raw) -> tuple[dict, list[str]]:
    """Validate and commit one payment; returns (rendered element, errors)."""
    org = ctx.org
    if not isinstance(raw, dict):
        return _failed({}, ["Element is not an object"]), ["Element is not an object"]
    errors: list[str] = []
    with ctx.store.lock:
        document, doc_kind = _document(org, raw, errors)
        account = None
        account_raw = raw.get("Account") if isinstance(raw.get("Account"), dict) else {}
        code, account_id = account_raw.get("Code"), account_raw.get("AccountID")
        if not (code or account_id):
            errors.append(NO_ACCOUNT)
        else:
            account = resolve_account(org, code, account_id, errors)
            if account is not None and account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
                errors.append(ACCOUNT_NOT_PAYABLE)
        try:
            day = parse_date(raw["Date"]) if raw.get("Date") else ctx.clock.org_today()
        except ValueError:
            errors.append("Date is not a valid date")
            day = None
        try:
            amount = round2(to_decimal(raw.get("Amount")))
            if amount <= ZERO:
                errors.append("Payment amount must be greater than zero")
        except ValueError:
            errors.append("Payment amount must be specified")
            amount = None
        if document is not None:
            if document["Status"] != "AUTHORISED":
                errors.append(ONLY_AUTHORISED)
            elif amount is not None and amount > dec(document["AmountDue"]):
                errors.append(EXCEEDS)
        check_lock_dates(org, day, errors)
        if errors:
            return _failed(raw, errors), errors
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "InvoiceID": document["InvoiceID"] if doc_kind == "invoice" else None,
            "CreditNoteID": document["CreditNoteID"] if doc_kind == "credit_note" else None,
            "AccountID": account["AccountID"],
            "Date": day.isoformat(),
            "Amount": stored(amount),
            "Reference": str(raw.get("Reference") or ""),
            "Status": "AUTHORISED",
            "PaymentType": PAYMENT_TYPES[document["Type"]],
            "IsReconciled": bool(raw.get("IsReconciled")),
            "UpdatedMs": ctx.now_ms(),
        }
        org.payments[payment["PaymentID"]] = payment
        document.setdefault("PaymentIDs", []).append(payment["PaymentID"])
        _apply_amount(document, amount, day.isoformat(), ctx.now_ms())
        ctx.store.mark_dirty()
        view = render.payment(org, payment)
    view["StatusAttributeString"] = "OK"
    return view, []


def _apply_amount(document: dict, amount: Decimal, day: str, now_ms: int) -> None:
    paid = dec(document["AmountPaid"]) + amount
    due = dec(document["Total"]) - paid - dec(document.get("AmountCredited"))
    document["AmountPaid"] = stored(paid)
    document["AmountDue"] = stored(due)
    if due == ZERO and document["Status"] == "AUTHORISED":
        document["Status"] = "PAID"
        document["FullyPaidOnDate"] = day
    elif due > ZERO and document["Status"] == "PAID":
        document["Status"] = "AUTHORISED"
        document["FullyPaidOnDate"] = None
    document["UpdatedMs"] = now_ms


def delete(ctx, payment: dict, raw) -> tuple[dict, list[str]]:
    """POST /Payments/{id} with Status DELETED: reverse the payment on its document."""
    org = ctx.org
    errors: list[str] = []
    if isinstance(raw, dict) and isinstance(raw.get("Payments"), list) and raw["Payments"]:
        raw = raw["Payments"][0]
    status = str((raw or {}).get("Status") or "").upper() if isinstance(raw, dict) else ""
    with ctx.store.lock:
        if status != "DELETED":
            errors.append("Payments can only be deleted by setting Status to DELETED")
        elif payment["Status"] == "DELETED":
            errors.append("This payment has already been deleted")
        else:
            check_lock_dates(org, parse_iso_date(payment["Date"]), errors)
        if errors:
            view = render.payment(org, payment)
            view.update(
                {
                    "StatusAttributeString": "ERROR",
                    "HasValidationErrors": True,
                    "ValidationErrors": [{"Message": m} for m in errors],
                }
            )
            return view, errors
        document = org.invoices.get(payment.get("InvoiceID") or "") or org.credit_notes.get(
            payment.get("CreditNoteID") or ""
        )
        payment["Status"] = "DELETED"
        payment["UpdatedMs"] = ctx.now_ms()
        if document is not None:
            _apply_amount(document, -dec(payment["Amount"]), payment["Date"], ctx.now_ms())
        ctx.store.mark_dirty()
        view = render.payment(org, payment)
    view["StatusAttributeString"] = "OK"
    return view, []
