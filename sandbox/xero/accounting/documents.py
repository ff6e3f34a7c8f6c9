"""Invoices and credit notes: create/update validation, the status machine, lock dates and commit."""

import copy
import uuid
from decimal import Decimal

from sandbox.xero.accounting import lines as line_rules
from sandbox.xero.accounting import render
from sandbox.xero.accounting.contacts import create_contact_record, resolve_contact
from sandbox.xero.dates import lock_date_text, parse_date, parse_iso_date
from sandbox.xero.money import ZERO, dec, stored

NOT_VALID_FOR_MODIFICATION = "Invoice not of valid status for modification"
NOT_VALID_FOR_CREATION = "Invoice not of valid status for creation"
HAS_ALLOCATIONS = "This document cannot be edited as it has a payment or credit note allocated to it."
NUMBER_TAKEN = "Invoice # must be unique."
CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
EDITABLE_FIELDS = ("Contact", "LineItems", "Date", "DueDate", "Reference", "LineAmountTypes", "CurrencyCode")


class Kind:
    """How one document family is named and stored."""

    def __init__(self, name, types, id_field, number_field, prefix, key) -> None:
        self.name = name
        self.types = types
        self.id_field = id_field
        self.number_field = number_field
        self.prefix = prefix
        self.key = key

    def collection(self, org) -> dict:
        """The org's records of this kind."""
        return org.invoices if self.name == "invoice" else org.credit_notes

    def render(self, org, record, lines=True, unitdp=2) -> dict:
        """Render a record of this kind."""
        if self.name == "invoice":
            return render.invoice(org, record, lines, unitdp)
        return render.credit_note(org, record, lines, unitdp)


INVOICE = Kind("invoice", ("ACCREC", "ACCPAY"), "InvoiceID", "InvoiceNumber", "INV-", "Invoices")
CREDIT_NOTE = Kind(
    "credit_note", ("ACCRECCREDIT", "ACCPAYCREDIT"), "CreditNoteID", "CreditNoteNumber", "CN-", "CreditNotes"
)


def check_lock_dates(org, day, errors: list[str]) -> None:
    """Refuse a ledger-affecting date on or before the end-of-year or period lock date."""
    if day is None:
        return
    year_end = parse_iso_date(org.data.get("end_of_year_lock_date"))
    period = parse_iso_date(org.data.get("period_lock_date"))
    if year_end and day <= year_end:
        errors.append(
            f"The document date cannot be before the end of year lock date, currently set at {lock_date_text(year_end)}"
        )
    elif period and day <= period:
        errors.append(
            f"The document date cannot be before the period lock date, currently set at {lock_date_text(period)}"
        )


def has_allocations(record: dict) -> bool:
    """Whether payments or credits are allocated to a document."""
    return dec(record.get("AmountPaid")) != ZERO or dec(record.get("AmountCredited")) != ZERO


def _number_taken(org, kind: Kind, number: str, own_id: str | None) -> bool:
    if kind is INVOICE:
        found = org.invoice_by_number(number)
        return found is not None and found["InvoiceID"] != own_id
    found = org.find_credit_note(number)
    return found is not None and found["CreditNoteID"] != own_id


def build(ctx, kind: Kind, raw: dict, existing: dict | None) -> tuple[dict, list[str], dict | None]:
    """Validate a request element against state; returns (record, errors, contact to create)."""
    org = ctx.org
    errors: list[str] = []
    pending_contact = None
    if existing is None:
        record = {
            kind.id_field: str(uuid.uuid4()),
            "Type": None,
            "ContactID": None,
            kind.number_field: "",
            "Reference": "",
            "Date": None,
            "DueDate": None,
            "Status": "DRAFT",
            "LineAmountTypes": "Exclusive",
            "CurrencyCode": "AUD",
            "CurrencyRate": "1",
            "LineItems": [],
            "AmountPaid": "0",
            "AmountCredited": "0",
            "PaymentIDs": [],
            "FullyPaidOnDate": None,
            "CreatedMs": ctx.now_ms(),
            "CreatedByClient": ctx.client_id,
        }
    else:
        record = copy.deepcopy(existing)
    raw_status = raw.get("Status")
    wanted_status = str(raw_status).upper() if raw_status else None

    if existing is None:
        doc_type = str(raw.get("Type") or "").upper()
        if doc_type not in kind.types:
            errors.append(f"{kind.key[:-1]} Type must be one of {', '.join(kind.types)}")
            doc_type = kind.types[0]
        record["Type"] = doc_type
        status = wanted_status or "DRAFT"
        if status not in CREATE_STATUSES:
            errors.append(NOT_VALID_FOR_CREATION)
            status = "DRAFT"
        edits = True
    else:
        current = existing["Status"]
        status = wanted_status or current
        edits = any(key in raw for key in EDITABLE_FIELDS)
        number = raw.get(kind.number_field)
        if number is not None and str(number).strip() != (existing.get(kind.number_field) or ""):
            edits = True
        if current in ("DELETED", "VOIDED"):
            if edits or status != current:
                errors.append(NOT_VALID_FOR_MODIFICATION)
            return record, errors, None
        if current == "PAID":
            if status == "VOIDED":
                errors.append(HAS_ALLOCATIONS)
            elif edits or status != current:
                errors.append(NOT_VALID_FOR_MODIFICATION)
            return record, errors, None
        if current == "AUTHORISED":
            if status not in ("AUTHORISED", "VOIDED"):
                errors.append(NOT_VALID_FOR_MODIFICATION)
                return record, errors, None
            if (status == "VOIDED" or edits) and has_allocations(existing):
                errors.append(HAS_ALLOCATIONS)
                return record, errors, None
        elif status not in (*CREATE_STATUSES, "DELETED"):
            errors.append(NOT_VALID_FOR_MODIFICATION)
            return record, errors, None

    if edits:
        if "Contact" in raw or existing is None:
            contact_id, pending_contact, echo = resolve_contact(ctx, raw.get("Contact"), errors)
            record["ContactID"] = contact_id
            if contact_id is None and pending_contact is None:
                record["ContactEcho"] = echo
        if "Date" in raw or existing is None:
            if raw.get("Date"):
                try:
                    record["Date"] = parse_date(raw["Date"]).isoformat()
                except ValueError:
                    errors.append("Date is not a valid date")
            else:
                record["Date"] = ctx.clock.org_today().isoformat()
        if raw.get("DueDate"):
            try:
                record["DueDate"] = parse_date(raw["DueDate"]).isoformat()
            except ValueError:
                errors.append("DueDate is not a valid date")
        if "Reference" in raw:
            record["Reference"] = str(raw.get("Reference") or "")
        if raw.get("CurrencyCode"):
            record["CurrencyCode"] = str(raw["CurrencyCode"]).upper()
        if raw.get("LineAmountTypes"):
            lat = line_rules.LINE_AMOUNT_TYPES.get(str(raw["LineAmountTypes"]).lower())
            if lat is None:
                errors.append("LineAmountTypes must be one of Exclusive, Inclusive, NoTax")
            else:
                record["LineAmountTypes"] = lat
        number = raw.get(kind.number_field)
        if isinstance(number, str) and number.strip():
            number = number.strip()
            if len(number) > 255:
                errors.append(f"{kind.number_field} must not be more than 255 characters long")
            if record["Type"] in ("ACCREC", "ACCRECCREDIT") and _number_taken(org, kind, number, record[kind.id_field]):
                errors.append(NUMBER_TAKEN if kind is INVOICE else "Credit Note # must be unique.")
            record[kind.number_field] = number
        if "LineItems" in raw or existing is None:
            raw_lines = raw.get("LineItems") or []
            if not isinstance(raw_lines, list):
                errors.append("LineItems must be a list")
                raw_lines = []
            previous = {line["LineItemID"]: line for line in (existing or {}).get("LineItems", [])}
            record["LineItems"] = [
                line_rules.build_line(
                    org,
                    item,
                    record["Type"],
                    record["LineAmountTypes"],
                    ctx.unitdp,
                    status != "DRAFT",
                    errors,
                    previous.get(str((item or {}).get("LineItemID") or "").lower()) if isinstance(item, dict) else None,
                )
                for item in raw_lines
            ]
        elif "LineAmountTypes" in raw and existing is not None:
            # Recompute tax on the kept lines under the new LineAmountTypes.
            kept = [
                {k: v for k, v in line.items() if k not in ("TaxAmount", "LineAmount")} for line in record["LineItems"]
            ]
            record["LineItems"] = [
                line_rules.build_line(
                    org,
                    {**line, "Tracking": line.get("Tracking")},
                    record["Type"],
                    record["LineAmountTypes"],
                    4,
                    False,
                    errors,
                    line,
                )
                for line in kept
            ]
        if status in ("SUBMITTED", "AUTHORISED") and not record["LineItems"]:
            errors.append("At least one line item must be specified")

    record["Status"] = status
    record.update(line_rules.totals(record["LineItems"], record["LineAmountTypes"]))
    paid = dec(record.get("AmountPaid")) + dec(record.get("AmountCredited"))
    record["AmountDue"] = stored(Decimal(record["Total"]) - paid)
    if status in ("VOIDED", "DELETED"):
        record["AmountDue"] = "0.00"
    if status == "AUTHORISED" and (existing is None or edits or existing["Status"] != "AUTHORISED"):
        check_lock_dates(org, parse_iso_date(record.get("Date")), errors)
    if status == "VOIDED":
        check_lock_dates(org, parse_iso_date(record.get("Date")), errors)
    if not record.get(kind.number_field) and record["Type"] in ("ACCREC", "ACCRECCREDIT") and not errors:
        taken = org.invoice_numbers if kind is INVOICE else org.credit_note_numbers
        record[kind.number_field] = org.next_number(kind.name, kind.prefix, taken)
    return record, errors, pending_contact


def commit(ctx, kind: Kind, record: dict, pending_contact: dict | None, existing: dict | None) -> dict:
    """Store a validated record (creating its new contact first); returns the stored record."""
    org = ctx.org
    if pending_contact is not None:
        contact = create_contact_record(ctx, pending_contact)
        record["ContactID"] = contact["ContactID"]
    record.pop("ContactEcho", None)
    record["UpdatedMs"] = ctx.now_ms()
    if record["Type"] in ("ACCREC", "ACCRECCREDIT") and record.get("ContactID") in org.contacts:
        org.contacts[record["ContactID"]]["IsCustomer"] = True
    elif record.get("ContactID") in org.contacts:
        org.contacts[record["ContactID"]]["IsSupplier"] = True
    if kind is INVOICE:
        if existing is not None:
            org.unindex_invoice(existing)
        org.invoices[record["InvoiceID"]] = record
        org.index_invoice(record)
    else:
        org.credit_notes[record["CreditNoteID"]] = record
        org.index_credit_note(record)
    ctx.store.mark_dirty()
    return record


def failed_view(ctx, kind: Kind, record: dict, errors: list[str], existing: dict | None) -> dict:
    """The element echoed back for a failed create/update, with its ValidationErrors."""
    shown = dict(record)
    shown.setdefault("UpdatedMs", ctx.now_ms())
    if existing is None:
        shown[kind.id_field] = render.ZERO_ID
    view = kind.render(ctx.org, shown, True, ctx.unitdp)
    view["HasErrors"] = True
    view["StatusAttributeString"] = "ERROR"
    view["ValidationErrors"] = [{"Message": message} for message in errors]
    return view


def process(ctx, kind: Kind, raw, existing: dict | None) -> tuple[dict, list[str]]:
    """Validate and (if clean) commit one element; returns (rendered element, errors)."""
    if not isinstance(raw, dict):
        return {
            "ValidationErrors": [{"Message": "Element is not an object"}],
            "StatusAttributeString": "ERROR",
            "HasErrors": True,
        }, ["Element is not an object"]
    with ctx.store.lock:
        record, errors, pending = build(ctx, kind, raw, existing)
        if errors:
            return failed_view(ctx, kind, record, errors, existing), errors
        committed = commit(ctx, kind, record, pending, existing)
        view = kind.render(ctx.org, committed, True, ctx.unitdp)
    view["StatusAttributeString"] = "OK"
    return view, []


def find_for_upsert(ctx, kind: Kind, raw) -> tuple[dict | None, str | None]:
    """POST semantics: match an existing document by id, else by number; (record, error)."""
    if not isinstance(raw, dict):
        return None, None
    collection = kind.collection(ctx.org)
    doc_id = raw.get(kind.id_field)
    if doc_id:
        found = collection.get(str(doc_id).lower())
        if found is None:
            return None, "The document with the supplied id was not found for this endpoint."
        return found, None
    number = raw.get(kind.number_field)
    if isinstance(number, str) and number.strip():
        found = ctx.org.invoice_by_number(number) if kind is INVOICE else ctx.org.find_credit_note(number)
        if found is not None:
            return found, None
    return None, None
