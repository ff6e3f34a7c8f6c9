"""Simulated clinic activity: invoices (new, paid, edited, archived, deleted, reopened) and appointments
(bookings, first bookings of new patients, arrivals, no-shows, cancellations)."""

import random
from datetime import UTC, date, datetime, time, timedelta

from .clock import iso, parse_iso
from .generator import (
    CANCELLATION_REASONS,
    FIRST_NAMES,
    LAST_NAMES,
    PATIENT_DEFAULTS,
    STREETS,
    SUBURBS,
    ClinicBuilder,
    _ascii,
    _features,
)
from .money import dec, reprice_item
from .state import Account

INVOICE_KINDS = ("new_invoices", "payments", "edits", "archives", "deletes", "reopens")
APPOINTMENT_KINDS = ("bookings", "new_patient_bookings", "arrivals", "no_shows", "cancellations")
KINDS = INVOICE_KINDS + APPOINTMENT_KINDS
ALIASES = {
    "new": "new_invoices",
    "invoices": "new_invoices",
    "reopen": "reopens",
    "archive": "archives",
    "delete": "deletes",
    "edit": "edits",
    "pay": "payments",
    "booking": "bookings",
    "new_patients": "new_patient_bookings",
    "arrived": "arrivals",
    "no_show": "no_shows",
    "did_not_arrive": "no_shows",
    "cancel": "cancellations",
}
_STATUS_FEATURES = {
    "closed",
    "credit",
    "archived",
    "deleted",
    "edited_after_paid",
    "reopened_by_edit",
    "open",
    "deleted_patient",
}


def normalise(counts: dict) -> dict[str, int]:
    """The requested counts under their canonical names (unknown names raise ValueError)."""
    out = dict.fromkeys(KINDS, 0)
    for name, value in counts.items():
        key = ALIASES.get(name, name)
        if key not in out:
            raise ValueError(f"unknown activity '{name}'; expected one of {', '.join(KINDS)}")
        out[key] = int(value)
        if out[key] < 0:
            raise ValueError(f"'{name}' must not be negative")
    return out


def _live_invoices(account: Account, status: int | None = None) -> list[dict]:
    return [
        i
        for i in account.tables["invoices"].values()
        if not i.get("archived_at") and not i.get("deleted_at") and (status is None or i.get("status") == status)
    ]


def _touch_items(account: Account, invoice: dict, stamp: str, **fields) -> None:
    for item in account.items_of(invoice["id"]):
        if not item.get("deleted_at"):
            item.update(fields)
            item["updated_at"] = stamp


def simulate(account: Account, now: datetime, counts: dict, business_id: str | None = None) -> dict:
    """Apply activity at `now`, bumping `updated_at` of what changes; returns touched ids by kind.

    The six invoice kinds are always in the answer; an appointment kind only when it was asked for (a new
    patient booking also answers `new_patients`). `business_id` keeps appointment activity to one business.
    """
    wanted = normalise(counts)
    asked = {ALIASES.get(name, name) for name in counts}
    if business_id is not None:
        business_id = str(business_id)
        business = account.tables["businesses"].get(business_id)
        if business is None or business.get("archived_at") or business.get("deleted_at"):
            raise ValueError(f"business_id {business_id!r} is not a live business")
    rng = random.Random(f"cliniko-activity:{account.seed}:{account.activity_runs}")
    account.activity_runs += 1
    b = ClinicBuilder(account, rng)
    stamp = iso(now)
    done: dict[str, list[str]] = {k: [] for k in KINDS}

    for _ in range(wanted["new_invoices"]):
        invoice = _new_invoice(b, now)
        if invoice is not None:
            done["new_invoices"].append(invoice["id"])

    fresh = set(done["new_invoices"])

    def pick(pool: list[dict], n: int) -> list[dict]:
        """Up to n invoices that existed before this call, chosen reproducibly."""
        pool = sorted((r for r in pool if r["id"] not in fresh), key=lambda r: int(r["id"]))
        return rng.sample(pool, min(n, len(pool)))

    for inv in pick(_live_invoices(account, 10), wanted["payments"]):
        b.set_status(inv, 20, stamp)
        inv["updated_at"] = stamp
        _sync_appointment(account, inv)
        done["payments"].append(inv["id"])
    for inv in pick([i for i in _live_invoices(account) if i.get("status") in (10, 20)], wanted["edits"]):
        _edit(b, inv, stamp)
        done["edits"].append(inv["id"])
    for inv in pick(_live_invoices(account), wanted["archives"]):
        inv["archived_at"] = inv["updated_at"] = stamp
        _touch_items(account, inv, stamp, archived_at=stamp)
        done["archives"].append(inv["id"])
    for inv in pick(_live_invoices(account, 10), wanted["deletes"]):
        inv["deleted_at"] = inv["updated_at"] = stamp
        _touch_items(account, inv, stamp, deleted_at=stamp)
        done["deletes"].append(inv["id"])
    for inv in pick(_live_invoices(account, 20), wanted["reopens"]):
        b.set_status(inv, 10, None)
        inv["updated_at"] = stamp
        _sync_appointment(account, inv)
        done["reopens"].append(inv["id"])
    result: dict = {"now": stamp, **{k: done[k] for k in INVOICE_KINDS}}
    if asked & set(APPOINTMENT_KINDS):
        result.update(_appointment_activity(b, now, wanted, asked, business_id))
    return result


def _sync_appointment(account: Account, invoice: dict) -> None:
    appointment = account.tables["individual_appointments"].get(invoice.get("appointment_id") or "")
    if appointment is not None:
        appointment["invoice_status"] = invoice["status"]


def _edit(b: ClinicBuilder, inv: dict, stamp: str) -> None:
    """Edit an invoice the way staff do: an Open one gains a line or quantity; a Paid one a note or a line."""
    account, rng = b.account, b.rng
    items = [i for i in account.items_of(inv["id"]) if not i.get("deleted_at")]
    products = [p for p in b.live("products") if p.get("tax_id")]
    if inv["status"] == 20 and rng.random() < 0.5:
        inv["notes"] = f"Edited {stamp[:10]}: claim number updated"
        inv["patient_extra_information"] = f"Claim no. {rng.randrange(10**7, 10**8)}"
    elif items and inv["status"] == 10 and rng.random() < 0.5:
        item = items[0]
        item["quantity"] = dec(item["quantity"]) + 1
        reprice_item(item)
        item["updated_at"] = stamp
        b.retotal(inv)
    elif products:
        account.add("invoice_items", b.line(inv["id"], stamp, product=rng.choice(products)))
        b.retotal(inv)
        if inv["status"] == 20:  # more is owed than was paid: the invoice is open again
            b.set_status(inv, 10, None)
            _sync_appointment(account, inv)
    inv["updated_at"] = stamp


def _new_invoice(b: ClinicBuilder, now: datetime) -> dict | None:
    """A visit that has just ended: its appointment (arrived) and an Open invoice."""
    account, rng, tables = b.account, b.rng, b.account.tables
    practitioners = [p for p in tables["practitioners"].values() if p.get("active")]
    patients = [p for p in tables["patients"].values() if not p.get("archived_at") and not p.get("deleted_at")]
    types = b.live("appointment_types")
    if not practitioners or not patients or not types:
        return None
    practitioner = rng.choice(practitioners)
    business = tables["businesses"].get(rng.choice(practitioner.get("_business_ids") or [""]))
    if business is None:
        business = next(iter(b.live("businesses")), None)
    if business is None:
        return None
    atype = rng.choice(types)
    patient = rng.choice(patients)
    features = _features(rng, -1, {}) - _STATUS_FEATURES
    minutes = atype.get("duration_in_minutes") or 30
    starts = now - timedelta(minutes=minutes + rng.randrange(1, 15))
    booked = datetime.combine(starts.date() - timedelta(days=rng.randrange(0, 14)), time(9), UTC)
    appointment = None
    if "product_only" not in features:
        appointment = b.appointment(
            starts,
            minutes,
            patient,
            practitioner,
            business,
            atype,
            booked,
            patient_arrived=True,
            updated_at=iso(now),
        )
    invoice_id = account.allocate_id()
    stamp = iso(now)
    lines = b.visit_lines(invoice_id, stamp, atype, patient, features)
    issue_date = now.astimezone(b.business_tz(business["id"])).date().isoformat()
    invoice = b.invoice(stamp, issue_date, patient, practitioner, business, appointment, lines, invoice_id=invoice_id)
    if appointment is not None:
        appointment["invoice_status"] = invoice["status"]
    return invoice


# -- appointments ----------------------------------------------------------------------------------------
def _appointment_activity(b: ClinicBuilder, now: datetime, wanted: dict, asked: set, business_id) -> dict:
    """Bookings, new patients' first bookings, arrivals, no-shows and cancellations, in that order."""
    rng, stamp = b.rng, iso(now)
    out: dict[str, list[str]] = {kind: [] for kind in APPOINTMENT_KINDS}
    new_patients: list[str] = []
    for _ in range(wanted["bookings"]):
        appt = _book(b, now, _live_patients(b.account), business_id, future=True)
        if appt is not None:
            out["bookings"].append(appt["id"])
    for _ in range(wanted["new_patient_bookings"]):
        patient = _new_patient(b, now)
        appt = _book(b, now, [patient], business_id, future=True)
        if appt is not None:
            new_patients.append(patient["id"])
            out["new_patient_bookings"].append(appt["id"])
    fresh = set(out["bookings"]) | set(out["new_patient_bookings"])

    def pool(future: bool) -> list[dict]:
        """Appointments booked before this call, still open: not cancelled, arrived or marked DNA."""
        rows = []
        for appt in b.account.tables["individual_appointments"].values():
            if appt["id"] in fresh or appt.get("archived_at") or appt.get("deleted_at") or appt.get("cancelled_at"):
                continue
            if appt.get("patient_arrived") or appt.get("did_not_arrive"):
                continue
            if business_id is not None and appt.get("business_id") != business_id:
                continue
            if future != (parse_iso(appt["starts_at"]) > now) or (not future and parse_iso(appt["ends_at"]) > now):
                continue
            patient = b.account.tables["patients"].get(appt.get("patient_id") or "")
            if patient is None or patient.get("archived_at") or patient.get("deleted_at"):
                continue
            rows.append(appt)
        return sorted(rows, key=lambda r: int(r["id"]))

    def pick(kind: str, future: bool) -> list[dict]:
        """Up to n open appointments (past ones that have ended, or future ones); books more when short."""
        n = wanted[kind]
        rows = pool(future)
        chosen = rng.sample(rows, min(n, len(rows)))
        while len(chosen) < n:
            appt = _book(b, now, _live_patients(b.account), business_id, future=future)
            if appt is None:
                break
            chosen.append(appt)
        return chosen

    for appt in pick("arrivals", future=False):
        appt["patient_arrived"] = True  # no Cliniko invoice: an appointment-mode clinic invoices from Xero
        appt["updated_at"] = stamp
        out["arrivals"].append(appt["id"])
    for appt in pick("no_shows", future=False):
        appt["did_not_arrive"] = True
        appt["updated_at"] = stamp
        out["no_shows"].append(appt["id"])
    for appt in pick("cancellations", future=True):
        reason = rng.choice(sorted(CANCELLATION_REASONS))
        appt.update(
            cancelled_at=stamp,
            updated_at=stamp,
            cancellation_reason=reason,
            cancellation_reason_description=CANCELLATION_REASONS[reason],
            cancellation_note=rng.choice(["Patient phoned reception", "Cancelled online", None]),
        )
        out["cancellations"].append(appt["id"])
    result = {kind: ids for kind, ids in out.items() if kind in asked}
    if "new_patient_bookings" in asked:
        result["new_patients"] = new_patients
    return result


def _live_patients(account: Account) -> list[dict]:
    return [
        p
        for p in account.tables["patients"].values()
        if not p.get("archived_at") and not p.get("deleted_at") and not p.get("merged_at")
    ]


def _book(b: ClinicBuilder, now: datetime, patients: list[dict], business_id, future: bool) -> dict | None:
    """A booking made now: a future slot in business hours, or (future=False) one that has already ended."""
    rng, tables = b.rng, b.account.tables
    practitioners = [
        p
        for p in tables["practitioners"].values()
        if p.get("active", True) and (business_id is None or business_id in (p.get("_business_ids") or ()))
    ]
    live_businesses = {x["id"]: x for x in b.live("businesses")}
    types = b.live("appointment_types")
    if not practitioners or not patients or not types:
        return None
    practitioner = rng.choice(sorted(practitioners, key=lambda p: int(p["id"])))
    options = [i for i in practitioner.get("_business_ids") or () if i in live_businesses]
    if business_id is not None:
        options = [business_id]
    if not options:
        return None
    business = live_businesses[rng.choice(options)]
    offered = business.get("appointment_type_ids")
    atype = rng.choice([t for t in types if offered is None or t["id"] in offered] or types)
    patient = rng.choice(patients)
    minutes = atype.get("duration_in_minutes") or 30
    if future:
        tz = b.business_tz(business["id"])
        day = now.astimezone(tz).date() + timedelta(days=rng.randrange(1, 15))
        starts = datetime.combine(day, time(rng.randrange(8, 18), rng.choice((0, 15, 30, 45))), tz).astimezone(UTC)
        created = now
    else:
        starts = now - timedelta(minutes=minutes + rng.randrange(1, 90))
        created = min(now, starts - timedelta(days=rng.randrange(0, 14), minutes=rng.randrange(0, 600)))
    return b.appointment(
        starts,
        minutes,
        patient,
        practitioner,
        business,
        atype,
        created,
        updated_at=iso(now),
        email_reminder_sent=not future,
    )


def _new_patient(b: ClinicBuilder, now: datetime) -> dict:
    """A patient who has just been added (by reception or an online booking) to book a first visit."""
    account, rng = b.account, b.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    state = "NSW" if rng.random() < 0.6 else "WA"
    suburb, post_code = rng.choice(SUBURBS[state])
    n = len(account.tables["patients"])
    email = None if rng.random() < 0.12 else f"{_ascii(first)}.{_ascii(last)}{n}@example.com"
    mobile = f"04{rng.randrange(10, 99)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}"
    concessions = sorted(account.tables["concession_types"], key=int)
    stamp = iso(now)
    return account.add(
        "patients",
        {
            "id": account.allocate_id(),
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
            "deleted_at": None,
            "merged_at": None,
            "merged_with_patient_id": None,
            "first_name": first,
            "last_name": last,
            "preferred_first_name": None,
            "title": None,
            "label": None,
            "email": email,
            "patient_phone_numbers": [
                {"number": mobile, "normalized_number": "+61" + mobile.replace(" ", "")[1:], "phone_type": "Mobile"}
            ],
            "address_1": f"{rng.randrange(1, 300)} {rng.choice(STREETS)}",
            "address_2": None,
            "address_3": None,
            "city": suburb,
            "state": state,
            "post_code": post_code,
            "country": "Australia",
            "date_of_birth": (date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 75))).isoformat(),
            "sex": rng.choice(["Female", "Male", None]),
            **PATIENT_DEFAULTS,
            "receives_confirmation_emails": email is not None,
            "reminder_type": "SMS & Email" if email else "SMS",
            "referral_source": None,
            "old_reference_id": None,
            "time_zone": None,
            "referring_doctor_id": None,
            "concession_type_id": rng.choice(concessions) if concessions and rng.random() < 0.2 else None,
        },
    )
