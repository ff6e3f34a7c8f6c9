"""Simulated clinic activity: new invoices, payments, edits, archiving, deletion and reopening."""

import random
from datetime import UTC, datetime, time, timedelta

from .clock import iso
from .generator import ClinicBuilder, _features
from .money import dec, reprice_item
from .state import Account

KINDS = ("new_invoices", "payments", "edits", "archives", "deletes", "reopens")
ALIASES = {
    "new": "new_invoices",
    "invoices": "new_invoices",
    "reopen": "reopens",
    "archive": "archives",
    "delete": "deletes",
    "edit": "edits",
    "pay": "payments",
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


def simulate(account: Account, now: datetime, counts: dict) -> dict:
    """Apply activity at `now`, bumping `updated_at` of what changes; returns touched invoice ids by kind."""
    wanted = normalise(counts)
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
    return {"now": stamp, **done}


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
