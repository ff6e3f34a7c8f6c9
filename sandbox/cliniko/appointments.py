"""Cliniko's write routes for individual appointments: create, update and cancel, with its 422 errors.

Shapes follow the published OpenAPI file: `POST /individual_appointments` and `PATCH /individual_appointments/{id}`
take the `IndividualAppointment` request body (`starts_at`, `ends_at`, `patient_id`, `practitioner_id`,
`appointment_type_id`, `business_id`, `patient_case_id`, `notes`, `repeat_rule`) and answer 201/200 with the
appointment; `PATCH /individual_appointments/{id}/cancel` takes `cancellation_reason` (required, one of the
documented codes), `cancellation_note` and `apply_to_repeats`, and answers 204. Validation failures are 422
`{"message": "Validation Failed", "errors": {"field": "message"}}` (the spec's `ValidationError`).
"""

import random
from datetime import datetime, timedelta

from .clock import iso, parse_iso
from .generator import CANCELLATION_REASONS, ClinicBuilder
from .state import Account

# Fields of the spec's request body; the rest of a body is ignored, as Rails' strong parameters do.
_REFERENCES = {
    "patient_id": "patients",
    "practitioner_id": "practitioners",
    "appointment_type_id": "appointment_types",
    "business_id": "businesses",
}
# Attendance flags: not in the 2023 request body, but set by Cliniko's own app on the same record; accepted here.
_FLAGS = ("patient_arrived", "did_not_arrive")


class ValidationFailed(Exception):
    """A write the API refuses: answered 422 with `errors`."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("Validation Failed")
        self.errors = errors


def _id(value) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    return str(value)


def _check_reference(account: Account, field: str, value, errors: dict) -> dict | None:
    record_id = _id(value)
    if record_id is None:
        errors[field] = "can't be blank"
        return None
    record = account.tables[_REFERENCES[field]].get(record_id)
    if record is None or record.get("deleted_at"):
        errors[field] = "must exist"
        return None
    if record.get("archived_at") or record.get("active") is False:
        errors[field] = "is archived" if record.get("archived_at") else "is inactive"
        return None
    return record


def _time(body: dict, field: str, errors: dict) -> datetime | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    try:
        return parse_iso(str(value))
    except ValueError:
        errors[field] = "is invalid"
        return None


def _text(body: dict, field: str, errors: dict):
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        errors[field] = "must be a string"
    return value


def create(account: Account, body: dict, now: datetime) -> dict:
    """Book an appointment now (ends_at from the appointment type's duration unless given)."""
    errors: dict[str, str] = {}
    refs = {field: _check_reference(account, field, body.get(field), errors) for field in _REFERENCES}
    starts = _time(body, "starts_at", errors)
    if starts is None and "starts_at" not in errors:
        errors["starts_at"] = "can't be blank"
    ends = _time(body, "ends_at", errors)
    notes = _text(body, "notes", errors)
    business, practitioner, atype = refs["business_id"], refs["practitioner_id"], refs["appointment_type_id"]
    if business and practitioner and business["id"] not in (practitioner.get("_business_ids") or [business["id"]]):
        errors["practitioner_id"] = "does not work at this business"
    if starts is not None and ends is not None and ends <= starts:
        errors["ends_at"] = "must be after starts_at"
    if errors:
        raise ValidationFailed(errors)
    minutes = atype.get("duration_in_minutes") or 30
    appt = ClinicBuilder(account, random.Random(0)).appointment(
        starts,
        minutes,
        refs["patient_id"],
        practitioner,
        business,
        atype,
        now,
        email_reminder_sent=False,
        notes=notes,
        patient_case_id=_id(body.get("patient_case_id")),
        repeat_rule=body.get("repeat_rule") if isinstance(body.get("repeat_rule"), dict) else None,
    )
    if ends is not None:
        appt["ends_at"] = iso(ends)
    return appt


def update(account: Account, appt: dict, body: dict, now: datetime) -> dict:
    """Change an appointment: time (keeping its length when only starts_at moves), people, type, notes, flags."""
    errors: dict[str, str] = {}
    refs = {field: _check_reference(account, field, body[field], errors) for field in _REFERENCES if field in body}
    starts = _time(body, "starts_at", errors) if "starts_at" in body else None
    if "starts_at" in body and starts is None and "starts_at" not in errors:
        errors["starts_at"] = "can't be blank"
    ends = _time(body, "ends_at", errors) if "ends_at" in body else None
    notes = _text(body, "notes", errors) if "notes" in body else None
    for flag in _FLAGS:
        if flag in body and not isinstance(body[flag], bool):
            errors[flag] = "must be true or false"
    old_starts, old_ends = parse_iso(appt["starts_at"]), parse_iso(appt["ends_at"])
    new_starts = starts or old_starts
    atype = refs.get("appointment_type_id") or account.tables["appointment_types"].get(appt["appointment_type_id"])
    if "ends_at" in body and body["ends_at"] is None:  # documented: null means "from the appointment type"
        new_ends = new_starts + timedelta(minutes=(atype or {}).get("duration_in_minutes") or 30)
    elif ends is not None:
        new_ends = ends
    else:
        new_ends = new_starts + (old_ends - old_starts)
    if new_ends <= new_starts and "ends_at" not in errors:
        errors["ends_at"] = "must be after starts_at"
    if errors:
        raise ValidationFailed(errors)
    for field, record in refs.items():
        appt[field] = record["id"]
        if field == "patient_id":
            appt["patient_name"] = f"{record['first_name']} {record['last_name']}"
    appt["starts_at"], appt["ends_at"] = iso(new_starts), iso(new_ends)
    if "notes" in body:
        appt["notes"] = notes
    if "patient_case_id" in body:
        appt["patient_case_id"] = _id(body["patient_case_id"])
    if "repeat_rule" in body and (body["repeat_rule"] is None or isinstance(body["repeat_rule"], dict)):
        appt["repeat_rule"] = body["repeat_rule"]
    for flag in _FLAGS:
        if flag in body:
            appt[flag] = body[flag]
    appt["updated_at"] = iso(now)
    return appt


def cancel(appt: dict, body: dict, now: datetime) -> dict:
    """Cancel an appointment with a documented reason code (cancelling again replaces the reason)."""
    reason = body.get("cancellation_reason")
    note = body.get("cancellation_note")
    errors: dict[str, str] = {}
    if reason is None or reason == "":
        errors["cancellation_reason"] = "can't be blank"
    elif (
        isinstance(reason, bool)
        or not isinstance(reason, int | str)
        or not str(reason).isdigit()
        or int(reason) not in CANCELLATION_REASONS
    ):
        errors["cancellation_reason"] = "is not included in the list"
    if note is not None and not isinstance(note, str):
        errors["cancellation_note"] = "must be a string"
    if errors:
        raise ValidationFailed(errors)
    stamp = iso(now)
    appt.update(
        cancelled_at=appt.get("cancelled_at") or stamp,
        cancellation_reason=int(reason),
        cancellation_reason_description=CANCELLATION_REASONS[int(reason)],
        cancellation_note=note,
        updated_at=stamp,
    )
    return appt
