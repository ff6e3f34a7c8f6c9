"""Appointment mode (issue 8): from a completed Cliniko appointment to the Cliniko-shaped invoice and items
that the invoice mapping turns into a Xero invoice. Pure functions: no database, no HTTP.

An appointment is invoiced from its appointment type's billable item (its price, or the concession price
for the patient's concession type) and the type's product if it has one, each with its Cliniko tax, priced
the way Cliniko prices an invoice item (unit price ex tax, tax added, rounded to the cent). The invoice's
number is `A` + the appointment id, so it can never collide with a Cliniko invoice number and is the
natural key Xero is searched by before anything is sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from webapp.sync.mapping_common import as_decimal, clean_text, local_date, zone_of
from webapp.sync.settings import PracticeSettings

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
NUMBER_PREFIX = "A"


@dataclass
class Catalogue:
    """The Cliniko lists an appointment invoice is priced from, keyed by id (records as read)."""

    appointment_types: dict[str, dict] = field(default_factory=dict)
    billable_items: dict[str, dict] = field(default_factory=dict)
    products: dict[str, dict] = field(default_factory=dict)
    taxes: dict[str, dict] = field(default_factory=dict)
    businesses: dict[str, dict] = field(default_factory=dict)
    #: {(billable_item_id, concession_type_id): price}
    concession_prices: dict[tuple[str, str], Any] = field(default_factory=dict)
    concession_types: dict[str, dict] = field(default_factory=dict)


def _id(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def completed(appointment: dict, settings: PracticeSettings, now: datetime) -> bool:
    """Is the visit done, by the practice's rule (arrived, or ended without cancellation or no-show)?"""
    if appointment.get("patient_arrived") is True:
        return True
    if settings.appointment_completion != "ended":
        return False
    ends = _moment(appointment.get("ends_at"))
    return (ends is not None and ends <= now and not appointment.get("cancelled_at")
            and not appointment.get("did_not_arrive"))


def type_label(appointment: dict, catalogue: Catalogue) -> str:
    type_id = _id(appointment.get("appointment_type_id"))
    record = catalogue.appointment_types.get(type_id or "") or {}
    return clean_text(record.get("name")) or (f"#{type_id}" if type_id else "(none)")


def fact_skip(appointment: dict) -> str | None:
    """What happened to the appointment in Cliniko that rules an invoice out (None when nothing did)."""
    if appointment.get("deleted_at"):
        return "Appointment deleted in Cliniko"
    if appointment.get("archived_at"):
        return "Appointment archived in Cliniko"
    if appointment.get("cancelled_at"):
        why = clean_text(appointment.get("cancellation_reason_description"))
        return "Appointment cancelled in Cliniko" + (f" ({why})" if why else "")
    if appointment.get("did_not_arrive"):
        return "Patient did not arrive (marked in Cliniko)"
    if not appointment.get("patient_id"):
        return "The appointment has no patient"
    return None


def settings_skip(appointment: dict, settings: PracticeSettings, catalogue: Catalogue) -> str | None:
    """Which of the practice's appointment conditions rules this appointment out (None when none does)."""
    type_id = _id(appointment.get("appointment_type_id"))
    label = type_label(appointment, catalogue)
    if settings.only_appointment_types and type_id not in settings.only_appointment_types:
        return f"Appointment type '{label}' is not one of the types invoiced (Settings → Appointments)."
    if type_id in settings.claim_appointment_types:
        return (f"Appointment type '{label}' is billed as a claim, not invoiced to the patient "
                "(Settings → Appointments).")
    business_id = _id(appointment.get("business_id"))
    if settings.only_businesses and business_id not in settings.only_businesses:
        business = catalogue.businesses.get(business_id or "") or {}
        name = clean_text(business.get("business_name")) or f"#{business_id}"
        return f"Business '{name}' is not one of the businesses invoiced (Settings → Appointments)."
    return None


class PriceProblem(Exception):
    """The appointment cannot be priced from Cliniko's lists; says why and how to fix it."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


def _line(appointment_id: str, index: int, source: dict, kind: str, unit: Decimal, tax: dict | None,
          stamp: Any, concession_name: str | None = None) -> dict:
    rate = as_decimal((tax or {}).get("rate")) or Decimal(0)
    total = (unit * (1 + rate / HUNDRED)).quantize(CENT, ROUND_HALF_UP)
    return {
        "id": f"{appointment_id}-{index}",
        "invoice_id": None,
        "billable_item_id": _id(source.get("id")) if kind == "billable_item" else None,
        "product_id": _id(source.get("id")) if kind == "product" else None,
        "name": source.get("name"),
        "code": source.get("item_code"),
        "quantity": Decimal(1),
        "unit_price": unit,
        "discount_percentage": Decimal(0),
        "discounted_amount": Decimal(0),
        "is_monetary_discount": False,
        "tax_id": _id((tax or {}).get("id")),
        "tax_name": (tax or {}).get("name"),
        "tax_rate": rate,
        "total_including_tax": total,
        "concession_type_name": concession_name,
        "updated_at": stamp,
    }


def invoice_for(appointment: dict, catalogue: Catalogue, *, concession_type_id: str | None,
                concession_name: str | None, time_zone: str) -> tuple[dict, list[dict]]:
    """The Cliniko-shaped invoice and items for a completed appointment (PriceProblem when it cannot be priced)."""
    appt_id = str(appointment["id"])
    type_id = _id(appointment.get("appointment_type_id"))
    atype = catalogue.appointment_types.get(type_id or "")
    if atype is None:
        raise PriceProblem(f"Appointment type #{type_id} is not in the Cliniko lists read by this app.",
                           "Refresh the Cliniko lists (Mappings) and re-queue the row.")
    label = clean_text(atype.get("name")) or f"#{type_id}"
    stamp = appointment.get("updated_at")
    items: list[dict] = []
    item_id = _id(atype.get("billable_item_id"))
    if item_id:
        item = catalogue.billable_items.get(item_id)
        if item is None:
            raise PriceProblem(f"The billable item of appointment type '{label}' (#{item_id}) is not in the "
                               "Cliniko lists read by this app.", "Refresh the Cliniko lists and re-queue the row.")
        unit = as_decimal(item.get("price"))
        concession = None
        special = catalogue.concession_prices.get((item_id, concession_type_id or ""))
        if concession_type_id and as_decimal(special) is not None:
            unit, concession = as_decimal(special), concession_name or f"concession #{concession_type_id}"
        if unit is None:
            raise PriceProblem(f"Billable item '{item.get('name')}' has no price in Cliniko.",
                               "Give the billable item a price in Cliniko, then re-queue the row.")
        items.append(_line(appt_id, 1, item, "billable_item", unit, catalogue.taxes.get(_id(item.get("tax_id")) or ""),
                           stamp, concession))
    product_id = _id(atype.get("product_id"))
    if product_id and product_id in catalogue.products:
        product = catalogue.products[product_id]
        unit = as_decimal(product.get("price_ex_tax"))
        if unit is not None:
            items.append(_line(appt_id, 2, product, "product", unit,
                               catalogue.taxes.get(_id(product.get("tax_id")) or ""), stamp))
    if not items:
        raise PriceProblem(f"Appointment type '{label}' has no billable item in Cliniko, so there is nothing to "
                           "invoice.", f"Give '{label}' a billable item in Cliniko (Settings → Appointment types), "
                           "or list it as a claim type in Settings → Appointments, then re-queue the row.")
    business = catalogue.businesses.get(_id(appointment.get("business_id")) or "")
    zone, _ = zone_of(business, time_zone)
    issue = local_date(_moment(appointment.get("starts_at")), zone)
    total = sum((i["total_including_tax"] for i in items), Decimal(0))
    invoice = {
        "id": appt_id,
        "number": f"{NUMBER_PREFIX}{appt_id}",
        "issue_date": issue,
        "patient_id": _id(appointment.get("patient_id")),
        "practitioner_id": _id(appointment.get("practitioner_id")),
        "business_id": _id(appointment.get("business_id")),
        "appointment_id": appt_id,
        "status": None,
        "status_description": "Completed appointment",
        "total_amount": total,
        "updated_at": stamp,
        "archived_at": None,
        "deleted_at": None,
    }
    for item in items:
        item["invoice_id"] = appt_id
    return invoice, items
