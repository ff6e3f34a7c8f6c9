"""Discovery of Cliniko appointments (issue 8): appointment-driven invoicing and contacts at first booking.

Read when the practice invoices from completed appointments (`invoice_source = appointments`) or makes
Xero contacts at a patient's first booking (`contact_timing = first_booking`):

- `individual_appointments` changed since the cursor, by keyset like invoices (arrivals, no-shows,
  cancellations and edits all bump `updated_at`);
- in "ended" completion mode, also the appointments whose end time passed since the last poll (an
  appointment simply ending changes nothing in Cliniko).

A completed appointment becomes an `appointment` row: a Xero invoice priced from its appointment
type (webapp.sync.mapping_appointments), sent by the same push, batching, idempotency and screens as
invoices. Appointments not yet completed get no row; cancelled, no-show and deleted ones get a skipped
row with the reason. An appointment whose Cliniko invoice is already in Xero is
skipped with that reason, and (webapp.sync.changes) a Cliniko invoice of an appointment already invoiced
here is skipped too, so switching mode never invoices a visit twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import literal_column, select

from webapp.clients.cliniko import ClinikoClient
from webapp.extensions import db
from webapp.models import Practice, SyncJob, utcnow
from webapp.sync import catalogue, plans
from webapp.sync.changes import (
    Counts,
    _ensure_rows,
    _midnight,
    _new,
    _on_invoice_change,
    _rows,
    _unreadable,
    minimal_patient,
    store_source,
    upsert_contacts,
)
from webapp.sync.context import PracticeContext
from webapp.sync.mapping_appointments import (
    Catalogue,
    PriceProblem,
    _moment,
    completed,
    fact_skip,
    invoice_for,
)
from webapp.sync.mapping_common import sha256_of
from webapp.sync.mapping_contacts import patient_name
from webapp.sync.snapshot import from_json, to_json

logger = logging.getLogger(__name__)

CURSOR = "individual_appointments"
ENDED_CURSOR = "appointments_ended"
KIND = "appointment"
#: Set in the practice's cursors once the catalogue was read in appointment mode (concession prices).
CATALOGUE_MARK = "appointment_catalogue"


def load_catalogue(practice_id: int) -> Catalogue:
    """The Cliniko lists appointments are priced from, as cached by webapp.sync.catalogue."""
    def kind(name: str) -> dict[str, dict]:
        return {k: from_json(v) for k, v in catalogue.lookup(practice_id, name).items()}

    prices = {}
    for record in kind("concession_price").values():
        item, ctype = record.get("billable_item_id"), record.get("concession_type_id")
        if item and ctype:
            prices[(str(item), str(ctype))] = record.get("price")
    return Catalogue(
        appointment_types=kind("appointment_type"), billable_items=kind("billable_item"),
        products=kind("product"), taxes=kind("tax"), businesses=kind("business"), concession_prices=prices,
        concession_types=kind("concession_type"))


def _bookings(appointments: list[dict]) -> list[str]:
    """Patients who booked (appointments not deleted, archived or cancelled)."""
    return sorted({str(a["patient_id"]) for a in appointments if a.get("patient_id") and not (
        a.get("deleted_at") or a.get("archived_at") or a.get("cancelled_at"))})


def _invoiced_in_cliniko(practice_id: int, appointment_ids: list[str]) -> dict[str, SyncJob]:
    """{appointment id: the invoice row already in Xero for that appointment's Cliniko invoice}."""
    if not appointment_ids:
        return {}
    # Spelled as in the index ix_sync_jobs_invoice_appointment, so the planner uses it.
    appointment_of = literal_column("((sync_jobs.source -> 'invoice') ->> 'appointment_id')")
    rows = db.session.execute(select(appointment_of, SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind == "invoice", SyncJob.xero_id.is_not(None),
        appointment_of.in_(appointment_ids)))
    return {str(appt): row for appt, row in rows}


def record(ctx: PracticeContext, client: ClinikoClient, appointments: list[dict], cat: Catalogue, *,
           patient_cache: dict, now: datetime | None = None, priority: int = 0) -> Counts:
    """Read the page's patients, make first-booking contacts and the rows of completed appointments.
    Caller commits."""
    now = now or utcnow()
    counts = Counts()
    settings = ctx.settings
    wanted = sorted({str(a["patient_id"]) for a in appointments if a.get("patient_id")} - set(patient_cache))
    for patient in client.patients(wanted):
        patient_cache[str(patient["id"])] = patient
    if settings.contact_timing == "first_booking":
        upsert_contacts(ctx, patient_cache, _bookings(appointments), priority=priority)
    if not settings.appointment_mode:
        return counts

    ids = [str(a["id"]) for a in appointments]
    existing = _rows(ctx.practice_id, KIND, ids)
    invoiced = _invoiced_in_cliniko(ctx.practice_id, ids)
    wanted_rows, invoicing = [], []
    for appt in appointments:
        appt_id = str(appt["id"])
        done = completed(appt, settings, now)
        skip = fact_skip(appt)
        # Bookings still to happen get no row; a cancelled or missed one gets a skipped row saying so.
        if appt_id in existing or done or skip:
            wanted_rows.append(appt)
            if done and not skip:
                invoicing.append(str(appt["patient_id"]))
    if settings.contact_timing != "first_booking":
        upsert_contacts(ctx, patient_cache, invoicing, priority=priority)
    new_values = [_new(ctx.practice_id, KIND, str(a["id"]), priority=priority)
                  for a in wanted_rows if str(a["id"]) not in existing]
    rows = _ensure_rows(ctx.practice_id, KIND, new_values) | existing
    with db.session.no_autoflush:
        for appt in wanted_rows:
            row = rows[str(appt["id"])]
            try:
                _upsert_one(ctx, row, appt, cat, patient_cache.get(str(appt.get("patient_id"))),
                            invoiced.get(str(appt["id"])), now, counts)
            except Exception as exc:  # one unreadable appointment must not block the page or the cursor
                logger.exception("appointment %s of practice %s could not be read", row.cliniko_id, ctx.practice_id)
                _unreadable(row, exc, "appointment")
    return counts


def _source(ctx: PracticeContext, appt: dict, cat: Catalogue, patient: dict | None,
            invoice_row: SyncJob | None, now: datetime) -> dict:
    settings = ctx.settings
    type_id = str(appt.get("appointment_type_id") or "")
    atype = cat.appointment_types.get(type_id) or {}
    source: dict = {
        "appointment": to_json(appt),
        "patient": to_json(minimal_patient(patient, "name")),
        "appointment_type": {"id": type_id, "name": atype.get("name")},
    }
    skip = fact_skip(appt)
    if skip is None and not completed(appt, settings, now):
        skip = ("No longer marked as arrived in Cliniko" if settings.appointment_completion == "arrived"
                else "Not completed in Cliniko")
    if skip is None and invoice_row is not None:
        skip = (f"This appointment already has a Cliniko invoice in Xero ({invoice_row.invoice_number}); "
                "it is not invoiced twice")
    if skip:
        source["skip"] = skip
        return source
    concession_id = str((patient or {}).get("concession_type_id") or "") or None
    concession = cat.concession_types.get(concession_id or "")  # loaded once per pass (load_catalogue)
    try:
        invoice, items = invoice_for(appt, cat, concession_type_id=concession_id,
                                     concession_name=(concession or {}).get("name"), time_zone=settings.time_zone)
    except PriceProblem as exc:
        source["problem"] = {"reason": exc.reason, "fix": exc.fix}
        return source
    source["invoice"] = to_json(invoice)
    source["items"] = to_json(items)
    return source


def _upsert_one(ctx: PracticeContext, row: SyncJob, appt: dict, cat: Catalogue, patient: dict | None,
                invoice_row: SyncJob | None, now: datetime, counts: Counts) -> None:
    source = _source(ctx, appt, cat, patient, invoice_row, now)
    built = plans.appointment(ctx, source)
    invoice = from_json(source.get("invoice")) or {}
    row.invoice_number = f"{ctx.settings.invoice_number_prefix}A{row.cliniko_id}"
    row.patient_name = (patient_name(patient)[0] if patient else None) or row.patient_name or appt.get("patient_name")
    if invoice.get("total_amount") is not None:
        row.amount = invoice["total_amount"]
    starts = _moment(appt.get("starts_at"))
    if invoice.get("issue_date"):
        row.issue_date = _midnight(invoice["issue_date"])
    elif starts is not None:
        row.issue_date = starts
    row.source_updated_at = _moment(appt.get("updated_at"))
    row.parent_cliniko_id = str(appt.get("patient_id")) if appt.get("patient_id") else None
    if not store_source(row, source, built.hash or sha256_of(source), counts):
        return
    if built.skip and row.status == "synced":
        # Already a Xero invoice: say so on the row; voiding a sent visit is a person's decision.
        row.status_reason = (f"{built.skip} after it was invoiced in Xero ({row.invoice_number}); void that invoice "
                             "in Xero if the patient should not pay")
        return
    _on_invoice_change(row, built)


def poll(ctx: PracticeContext, client: ClinikoClient, practice: Practice, cursors: dict, default: datetime,
         patient_cache: dict, pages) -> Counts:
    """Walk the appointments changed since the cursor (and, in "ended" mode, those that ended since the
    last poll), committing rows and cursor together page by page. `pages` splits records into pages."""
    from webapp.sync.discovery import changed_records, settle_cursor

    started = utcnow()
    total = Counts()
    if ctx.settings.appointment_mode and not cursors.get(CATALOGUE_MARK):
        # Just switched to appointment mode: read the lists it prices from (concessions included) now.
        catalogue.refresh(practice, client)
        cursors[CATALOGUE_MARK] = utcnow().isoformat()
        practice.poll_cursors = dict(cursors)
        db.session.commit()
    cat = load_catalogue(ctx.practice_id)
    since = datetime.fromisoformat(cursors[CURSOR]) if cursors.get(CURSOR) else default
    for page in pages(changed_records(client.individual_appointments_updated_since, since, client.per_page)):
        if any(str(a.get("appointment_type_id") or "") not in cat.appointment_types
               for a in page if a.get("appointment_type_id")):
            # A new appointment type (or its billable item): refresh the Cliniko lists once.
            catalogue.refresh(practice, client)
            cat = load_catalogue(ctx.practice_id)
        total.add(record(ctx, client, page, cat, patient_cache=patient_cache))
        newest = max((a["updated_at"] for a in page if a.get("updated_at")), default=None)
        if newest is not None and newest > since:
            since = newest
            cursors[CURSOR] = since.isoformat()
            practice.poll_cursors = dict(cursors)
        db.session.commit()
    settle_cursor(practice, cursors, CURSOR, started)
    if ctx.settings.appointment_mode and ctx.settings.appointment_completion == "ended":
        now = utcnow()
        start = datetime.fromisoformat(cursors[ENDED_CURSOR]) if cursors.get(ENDED_CURSOR) else default
        # A little overlap: an appointment read twice is unchanged and not resent.
        start = min(start, now) - timedelta(minutes=1)
        for page in pages(client.appointments_ended_between(start, now)):
            total.add(record(ctx, client, page, cat, patient_cache=patient_cache, now=now))
            db.session.commit()
        cursors[ENDED_CURSOR] = now.isoformat()
        practice.poll_cursors = dict(cursors)
        db.session.commit()
    return total
