"""Contacts: identifying a document's contact, name/number uniqueness, archiving, create/update."""

import copy
import uuid

from sandbox.xero.accounting import render

IDENTIFY = (
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber"
)
ARCHIVED = (
    "The contact with the specified contact details has been archived. The contact must be "
    "un-archived before creating new invoices or credit notes."
)
STRING_FIELDS = (
    "Name",
    "FirstName",
    "LastName",
    "EmailAddress",
    "ContactNumber",
    "AccountNumber",
    "TaxNumber",
    "CompanyNumber",
)
MAX_LENGTHS = {
    "Name": 255,
    "FirstName": 255,
    "LastName": 255,
    "EmailAddress": 255,
    "ContactNumber": 50,
    "AccountNumber": 50,
    "TaxNumber": 50,
    "CompanyNumber": 50,
}


def name_taken(name: str) -> str:
    """Xero's message for a duplicate active contact name."""
    return (
        f"The contact name {name} is already assigned to another contact. The contact name must be "
        f"unique across all active contacts."
    )


def number_taken(number: str) -> str:
    """Xero's message for a duplicate ContactNumber."""
    return (
        f"The contact number {number} is already assigned to another contact. The contact number must "
        f"be unique across all contacts."
    )


def resolve_contact(ctx, raw, errors: list[str]) -> tuple[str | None, dict | None, dict]:
    """Find a document's contact by ContactID, ContactNumber or Name; else plan a new one from Name.

    Returns (contact id, contact to create on commit, echo of the request's contact).
    """
    org = ctx.org
    raw = raw if isinstance(raw, dict) else {}
    echo = {k: raw[k] for k in ("ContactID", "ContactNumber", "Name") if isinstance(raw.get(k), str)}
    contact_id, number, name = raw.get("ContactID"), raw.get("ContactNumber"), raw.get("Name")
    if not (contact_id or number or name):
        errors.append(IDENTIFY)
        return None, None, echo
    found = None
    if contact_id:
        found = org.contacts.get(str(contact_id).lower())
        if found is None:
            errors.append("The contact with the specified contact details could not be found.")
            return None, None, echo
    if found is None and number:
        found = org.contact_by_number(number)
    if found is None and name:
        found = org.contact_by_name(name)
        if found is None:
            archived = next(
                (c for c in org.contacts.values() if c["Name"].strip().lower() == str(name).strip().lower()),
                None,
            )
            if archived is not None:
                found = archived
    if found is None:
        if not name:
            errors.append("The contact with the specified contact details could not be found.")
            return None, None, echo
        new = {k: raw[k] for k in STRING_FIELDS if isinstance(raw.get(k), str)}
        problems = validate_fields(org, new, None)
        errors.extend(problems)
        return None, (None if problems else new), echo
    if found["ContactStatus"] != "ACTIVE":
        errors.append(ARCHIVED)
    return found["ContactID"], None, echo


def validate_fields(org, fields: dict, own_id: str | None, status: str = "ACTIVE") -> list[str]:
    """Length limits, Name required, Name unique among active contacts, ContactNumber unique among all."""
    errors = []
    for key, limit in MAX_LENGTHS.items():
        if isinstance(fields.get(key), str) and len(fields[key]) > limit:
            errors.append(f"{key} must not be more than {limit} characters long")
    name = (fields.get("Name") or "").strip()
    if not name:
        errors.append("Contact name must be specified")
    elif status == "ACTIVE":
        other = org.contact_by_name(name)
        if other is not None and other["ContactID"] != own_id:
            errors.append(name_taken(name))
    number = (fields.get("ContactNumber") or "").strip()
    if number:
        other = org.contact_by_number(number)
        if other is not None and other["ContactID"] != own_id:
            errors.append(number_taken(number))
    return errors


def create_contact_record(ctx, fields: dict) -> dict:
    """Store a new active contact (fields already validated)."""
    org = ctx.org
    record = {
        "ContactID": str(uuid.uuid4()),
        "ContactStatus": "ACTIVE",
        "Addresses": [],
        "Phones": [],
        "IsCustomer": False,
        "IsSupplier": False,
        "UpdatedMs": ctx.now_ms(),
    }
    for key in STRING_FIELDS:
        if isinstance(fields.get(key), str):
            record[key] = fields[key].strip() if key in ("Name", "ContactNumber") else fields[key]
    org.contacts[record["ContactID"]] = record
    org.index_contact(record)
    ctx.store.mark_dirty()
    return record


def _apply(record: dict, raw: dict) -> None:
    for key in STRING_FIELDS:
        if key in raw and (raw[key] is None or isinstance(raw[key], str)):
            value = raw[key] or ""
            record[key] = value.strip() if key in ("Name", "ContactNumber") else value
    for key in ("Addresses", "Phones"):
        if isinstance(raw.get(key), list):
            record[key] = [a for a in raw[key] if isinstance(a, dict)]
    for key in ("IsCustomer", "IsSupplier"):
        if isinstance(raw.get(key), bool):
            record[key] = raw[key]


def find_for_upsert(ctx, raw: dict) -> tuple[dict | None, str | None]:
    """POST semantics: match by ContactID, else ContactNumber, else active Name."""
    org = ctx.org
    if raw.get("ContactID"):
        found = org.contacts.get(str(raw["ContactID"]).lower())
        return (found, None) if found else (None, "The contact with the specified contact details could not be found.")
    if isinstance(raw.get("ContactNumber"), str) and raw["ContactNumber"].strip():
        found = org.contact_by_number(raw["ContactNumber"])
        if found:
            return found, None
    if isinstance(raw.get("Name"), str) and raw["Name"].strip():
        return org.contact_by_name(raw["Name"]), None
    return None, None


def process(ctx, raw, existing: dict | None) -> tuple[dict, list[str]]:
    """Create (existing None) or update one contact; returns (rendered element, errors)."""
    org = ctx.org
    if not isinstance(raw, dict):
        return {
            "StatusAttributeString": "ERROR",
            "HasValidationErrors": True,
            "ValidationErrors": [{"Message": "Element is not an object"}],
        }, ["Element is not an object"]
    with ctx.store.lock:
        record = (
            copy.deepcopy(existing)
            if existing
            else {
                "ContactID": render.ZERO_ID,
                "ContactStatus": "ACTIVE",
                "Addresses": [],
                "Phones": [],
                "IsCustomer": False,
                "IsSupplier": False,
                "UpdatedMs": ctx.now_ms(),
                "Name": "",
            }
        )
        _apply(record, raw)
        errors = []
        status = str(raw.get("ContactStatus") or record["ContactStatus"]).upper()
        if status not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
            errors.append("ContactStatus must be ACTIVE or ARCHIVED")
            status = record["ContactStatus"]
        record["ContactStatus"] = status
        errors.extend(validate_fields(org, record, existing["ContactID"] if existing else None, status))
        if errors:
            view = render.contact(record)
            view.update(
                {
                    "StatusAttributeString": "ERROR",
                    "HasValidationErrors": True,
                    "ValidationErrors": [{"Message": m} for m in errors],
                }
            )
            return view, errors
        if existing is None:
            fields = {k: record.get(k) for k in STRING_FIELDS if record.get(k)}
            stored = create_contact_record(ctx, fields)
            for key in ("Addresses", "Phones", "IsCustomer", "IsSupplier"):
                stored[key] = record[key]
        else:
            org.unindex_contact(existing)
            existing.clear()
            existing.update(record)
            existing["UpdatedMs"] = ctx.now_ms()
            org.index_contact(existing)
            stored = existing
            ctx.store.mark_dirty()
        view = render.contact(stored)
    view["StatusAttributeString"] = "OK"
    return view, []
