"""Cliniko patient → Xero Contact: the contact number key, the name, and the details a practice chose to share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webapp.sync.mapping_common import MappingError, clean_text, sha256_of
from webapp.sync.settings import PracticeSettings

# Xero's field limits (Contact: Name 255, ContactNumber 50, EmailAddress 255; phones and addresses below).
NAME_LIMIT = 255
CONTACT_NUMBER_LIMIT = 50
EMAIL_LIMIT = 255
PHONE_LIMIT = 50
ADDRESS_LINE_LIMIT = 500
CITY_LIMIT = 255
REGION_LIMIT = 255
POSTCODE_LIMIT = 50
COUNTRY_LIMIT = 50


@dataclass(frozen=True)
class ContactPlan:
    """The Xero Contact JSON for one patient and the rule behind each field."""

    payload: dict
    reasons: list[dict] = field(default_factory=list)
    contact_number: str = ""
    name: str = ""


def contact_number(settings: PracticeSettings, patient_id: Any) -> str:
    """The Xero ContactNumber of a Cliniko patient: the practice prefix + the patient id."""
    if patient_id is None or not str(patient_id).strip():
        raise MappingError("mapping", "The patient has no Cliniko id, so no Xero contact number can be made.",
                           "Check the invoice's patient in Cliniko, then re-queue the row.")
    return f"{settings.contact_number_prefix}{str(patient_id).strip()}"[:CONTACT_NUMBER_LIMIT]


def patient_name(patient: dict | None) -> tuple[str, str, str]:
    """(full name, first name, last name) cleaned for Xero; the full name may be empty."""
    patient = patient if isinstance(patient, dict) else {}
    first = clean_text(patient.get("first_name"), NAME_LIMIT)
    last = clean_text(patient.get("last_name"), NAME_LIMIT)
    full = clean_text(f"{first} {last}", NAME_LIMIT)
    return full, first, last


def disambiguated_name(name: str, number: str) -> str:
    """A contact name made unique with the contact number ("Jane Smith (CLK-123)"), within Xero's 255 characters."""
    suffix = f" ({number})"
    room = NAME_LIMIT - len(suffix)
    return f"{clean_text(name, room)}{suffix}" if room > 0 else suffix.strip()[:NAME_LIMIT]


def _email(value: Any) -> str | None:
    text = clean_text(value, EMAIL_LIMIT + 1).replace(" ", "")
    # Xero refuses a malformed address and would fail the whole contact; a bad email is dropped instead.
    if not text or len(text) > EMAIL_LIMIT or text.count("@") != 1:
        return None
    local, _, domain = text.partition("@")
    return text if local and "." in domain and not domain.startswith(".") and not domain.endswith(".") else None


_PHONE_TYPES = {"mobile": "MOBILE", "fax": "FAX"}


def _phones(patient: dict) -> tuple[list[dict], list[str]]:
    numbers = patient.get("patient_phone_numbers")
    if not isinstance(numbers, list):
        return [], []
    chosen: dict[str, str] = {}
    notes = []
    for entry in numbers:
        if not isinstance(entry, dict):
            continue
        number = clean_text(entry.get("number") or entry.get("normalized_number"), PHONE_LIMIT)
        if not number:
            continue
        kind = str(entry.get("phone_type") or "").strip().lower()
        # Xero keeps one number per type: the first mobile and fax go to their own slots, the first other
        # number (home/work/other) is the DEFAULT phone and a second one the DDI.
        xero_type = _PHONE_TYPES.get(kind) or ("DEFAULT" if "DEFAULT" not in chosen else "DDI")
        if xero_type in chosen:
            notes.append(f"extra {kind or 'phone'} number not sent (Xero keeps one per type)")
            continue
        chosen[xero_type] = number
    return [{"PhoneType": t, "PhoneNumber": n} for t, n in chosen.items()], notes


def _addresses(patient: dict) -> list[dict]:
    address = {
        "AddressLine1": clean_text(patient.get("address_1"), ADDRESS_LINE_LIMIT),
        "AddressLine2": clean_text(patient.get("address_2"), ADDRESS_LINE_LIMIT),
        "AddressLine3": clean_text(patient.get("address_3"), ADDRESS_LINE_LIMIT),
        "City": clean_text(patient.get("city"), CITY_LIMIT),
        "Region": clean_text(patient.get("state"), REGION_LIMIT),
        "PostalCode": clean_text(patient.get("post_code"), POSTCODE_LIMIT),
        "Country": clean_text(patient.get("country"), COUNTRY_LIMIT),
    }
    address = {k: v for k, v in address.items() if v}
    if not address:
        return []
    # POBOX is the postal address Xero prints on invoices; STREET is the physical one. A patient has one address.
    return [{"AddressType": "POBOX", **address}, {"AddressType": "STREET", **address}]


def contact_payload(patient: dict | None, settings: PracticeSettings) -> ContactPlan:
    """The Xero Contact JSON for a Cliniko patient, with only the details the practice chose to share."""
    patient = patient if isinstance(patient, dict) else {}
    number = contact_number(settings, patient.get("id"))
    full, first, last = patient_name(patient)
    reasons: list[dict] = [{"field": "ContactNumber", "value": number,
                            "rule": f"prefix '{settings.contact_number_prefix}' + Cliniko patient id"}]
    if full:
        name = full
        reasons.append({"field": "Name", "value": name, "rule": "patient's first and last name"})
    else:
        name = f"Patient {str(patient.get('id')).strip()}"
        reasons.append({"field": "Name", "value": name, "rule": "the patient has no name in Cliniko"})
    payload: dict[str, Any] = {"ContactNumber": number, "Name": name}
    if first:
        payload["FirstName"] = first
    if last:
        payload["LastName"] = last
    if settings.contact_details in ("email", "full"):
        email = _email(patient.get("email"))
        if email:
            payload["EmailAddress"] = email
            reasons.append({"field": "EmailAddress", "value": email,
                            "rule": f"contact details: {settings.contact_details}"})
        elif clean_text(patient.get("email")):
            reasons.append({"field": "EmailAddress", "value": None,
                            "rule": "the patient's email is not a valid address, so it is not sent"})
    else:
        reasons.append({"field": "EmailAddress", "value": None, "rule": "contact details: name only"})
    if settings.contact_details == "full":
        phones, notes = _phones(patient)
        if phones:
            payload["Phones"] = phones
        reasons.append({"field": "Phones", "value": len(phones), "rule": "contact details: full"
                        + (f" ({'; '.join(notes)})" if notes else "")})
        addresses = _addresses(patient)
        if addresses:
            payload["Addresses"] = addresses
        reasons.append({"field": "Addresses", "value": len(addresses), "rule": "contact details: full"})
    return ContactPlan(payload=payload, reasons=reasons, contact_number=number, name=name)


def details_hash(payload: dict) -> str:
    """sha256 of the contact payload's canonical JSON: a changed hash means the contact needs updating."""
    return sha256_of(payload)
