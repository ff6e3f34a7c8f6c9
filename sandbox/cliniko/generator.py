"""Deterministic demo data for a realistic clinic: the same seed (and clock) always gives the same account."""

import random
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .clock import iso
from .money import dec, dec_str, invoice_totals, price_line
from .state import Account

STATUS_DESCRIPTIONS = {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}
CANCELLATION_REASONS = {
    10: "Feeling Better",
    20: "Condition Worse",
    30: "Sick",
    31: "COVID-19 related",
    40: "Away",
    50: "Other",
    60: "Work",
}

FIRST_NAMES = [
    "Olivia",
    "Jack",
    "Charlotte",
    "William",
    "Amelia",
    "Noah",
    "Isla",
    "Oliver",
    "Mia",
    "Thomas",
    "Grace",
    "James",
    "Chloé",
    "Lucas",
    "Zoë",
    "Ethan",
    "Ava",
    "Liam",
    "Sophie",
    "Henry",
    "Ruby",
    "Leo",
    "Matilda",
    "Harrison",
    "Ella",
    "Archie",
    "Harper",
    "Mason",
    "Evie",
    "Hugo",
    "Renée",
    "José",
    "Siobhán",
    "Łukasz",
    "Björn",
    "François",
    "Søren",
    "Aroha",
    "Mădălina",
    "Anh",
    "Wei",
    "Priya",
    "Mohammed",
    "Fatima",
    "Ngaio",
    "Kai",
    "Aaliyah",
    "Sarah",
    "Daniel",
    "Emily",
]
LAST_NAMES = [
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Johnson",
    "White",
    "Martin",
    "Anderson",
    "Thompson",
    "Nguyễn",
    "Tran",
    "Lee",
    "Harris",
    "Ryan",
    "Walker",
    "Kelly",
    "King",
    "O'Brien",
    "Müller",
    "García",
    "Kowalski",
    "Chen",
    "Wang",
    "Singh",
    "Patel",
    "Murphy",
    "Zhang",
    "Ōtake",
    "D'Souza",
    "van der Berg",
    "Smith-Jones",
    "Lindqvist",
    "Nakamura",
    "Fernández",
    "Papadopoulos",
    "MacDonald",
    "Rossi",
]
# (index, first, last): fixed patients so that every data set has unicode names and same-name pairs
FIXED_NAMES = [
    (2, "Sarah", "Smith"),
    (3, "Sarah", "Smith"),
    (5, "Zoë", "Nguyễn"),
    (6, "Иван", "Петров"),
    (8, "明", "王"),
    (12, "José", "García"),
    (14, "Liam", "O'Brien"),
    (15, "Liam", "O'Brien"),
]
MISSING_EMAIL, MERGED, MERGED_INTO, DELETED, ARCHIVED = 4, 7, 0, 9, 11

BUSINESSES = [
    {
        "business_name": "Harbourside Physio Sydney",
        "address_1": "Level 2, 88 George Street",
        "city": "Sydney",
        "state": "NSW",
        "post_code": "2000",
        "time_zone": "Sydney",
        "time_zone_identifier": "Australia/Sydney",
        "business_registration_value": "51 824 753 556",
        "phone": "(02) 9251 0000",
    },
    {
        "business_name": "Swan River Physio Perth",
        "address_1": "140 St Georges Terrace",
        "city": "Perth",
        "state": "WA",
        "post_code": "6000",
        "time_zone": "Perth",
        "time_zone_identifier": "Australia/Perth",
        "business_registration_value": "51 824 753 556",
        "phone": "(08) 9322 0000",
    },
    {
        "business_name": "Parramatta Pop-up Clinic",
        "address_1": "1 Church Street",
        "city": "Parramatta",
        "state": "NSW",
        "post_code": "2150",
        "time_zone": "Sydney",
        "time_zone_identifier": "Australia/Sydney",
        "business_registration_value": "51 824 753 556",
        "phone": "(02) 9635 0000",
        "archived": True,
    },
]
# name, rate
TAXES = [("GST", "10.0"), ("GST Free", "0.0"), ("NZ GST", "15.0")]
# name, code, item_type, price ex tax, tax index, concession prices {concession index: price}, archived
BILLABLE_ITEMS = [
    ("Initial Consultation", "INIT", "Service", "120.0", 1, {0: "95.0", 1: "100.0"}, False),
    ("Standard Consultation", "STD", "Service", "90.0", 1, {0: "70.0", 1: "75.0"}, False),
    ("Extended Consultation", "EXT", "Service", "140.0", 1, {}, False),
    ("Remedial Massage (60 min)", "MAS60", "Service", "100.0", 0, {}, False),
    ("Clinical Pilates Class", "PIL", "Service", "35.0", 0, {0: "28.0"}, False),
    ("Telehealth Consultation", "TELE", "Service", "85.0", 1, {}, False),
    ("Cancellation Fee", "CXL", "Other", "45.0", 0, {}, False),
    ("Report Writing (per hour)", "RPT", "Other", "160.0", 0, {}, False),
    ("Dry Needling Add-on", "DN", "Service", "30.0", 1, {}, True),
]
# name, code, price ex tax, tax index, cost, archived
PRODUCTS = [
    ("Theraband (Medium)", "TB-M", "18.1818", 0, "6.5", False),
    ("Foam Roller 90cm", "FR-90", "40.9091", 0, "15.0", False),
    ("Wheat Heat Pack", "HP-W", "22.7273", 0, "8.0", False),
    ("Manuka Massage Oil (NZ)", "OIL-NZ", "26.087", 2, "9.0", False),
    ("Posture Brace", "PB-1", "63.6364", 0, "25.0", False),
    ("Kinesio Tape Roll", "KT-5", "13.6364", 0, "4.0", True),
]
# Patient fields the generator leaves at Cliniko's defaults (shared with activity's new patients).
PATIENT_DEFAULTS = {
    "gender": None, "gender_identity": None, "pronouns": None, "medicare": None, "medicare_reference_number": None,
    "dva_card_number": None, "occupation": None, "emergency_contact": None, "notes": None,
    "appointment_notes": None, "custom_fields": None, "invoice_default_to": None, "invoice_email": None,
    "invoice_extra_information": None, "accepted_privacy_policy": True, "accepted_email_marketing": False,
    "accepted_sms_marketing": False,
}
CONCESSIONS = ["Pensioner", "Student", "Health Care Card"]
# name, minutes, billable item index, product index or None, category, colour, telehealth
APPOINTMENT_TYPES = [
    ("Initial Consultation", 60, 0, 0, "Physiotherapy", "#2e86de", False),
    ("Standard Consultation", 30, 1, None, "Physiotherapy", "#10ac84", False),
    ("Extended Consultation", 45, 2, None, "Physiotherapy", "#5f27cd", False),
    ("Remedial Massage", 60, 3, None, "Massage", "#ff9f43", False),
    ("Clinical Pilates", 55, 4, None, "Pilates", "#ee5253", False),
    ("Telehealth Consultation", 30, 5, None, "Physiotherapy", "#0abde3", True),
]
# first, last, title, designation, business indexes, active
PRACTITIONERS = [
    ("Amelia", "Chen", "Dr", "Physiotherapist", (0,), True),
    ("Liam", "O'Connor", None, "Physiotherapist", (0,), True),
    ("Priya", "Raman", None, "Remedial Massage Therapist", (0, 1), True),
    ("Mateo", "García", None, "Physiotherapist", (1,), True),
    ("Sophie", "Nguyễn", "Dr", "Physiotherapist", (1,), True),
    ("Noah", "Williams", None, "Pilates Instructor", (0,), False),
]
SUBURBS = {
    "NSW": [("Surry Hills", "2010"), ("Newtown", "2042"), ("Bondi", "2026"), ("Chatswood", "2067")],
    "WA": [("Subiaco", "6008"), ("Fremantle", "6160"), ("Leederville", "6007"), ("Scarborough", "6019")],
}
STREETS = ["King St", "Oxford St", "Beach Rd", "Railway Pde", "Hay St", "Victoria Rd", "Stirling Hwy"]

# Invoice features every generated data set contains at least once (spread over the date range).
REQUIRED_FEATURES = [
    "deleted_patient",
    "monetary_discount",
    "percentage_discount",
    "product",
    "decimal_quantity",
    "product_only",
    "concession",
    "dna_fee",
    "closed",
    "credit",
    "archived",
    "deleted",
    "edited_after_paid",
    "reopened_by_edit",
    "nz_tax",
    "open",
]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c for c in folded if c.isalnum()) or "patient"


class ClinicBuilder:
    """Makes records for an account; used by the generator and by simulated clinic activity."""

    def __init__(self, account: Account, rng: random.Random):
        self.account = account
        self.rng = rng

    # -- lookups -----------------------------------------------------------------------------------------
    def live(self, table: str) -> list[dict]:
        """Records of a table that are neither archived nor deleted."""
        return [r for r in self.account.tables[table].values() if not r.get("archived_at") and not r.get("deleted_at")]

    def tax(self, tax_id: str | None) -> dict | None:
        """A tax record by id."""
        return self.account.tables["taxes"].get(tax_id) if tax_id else None

    def business_tz(self, business_id: str) -> ZoneInfo:
        """The IANA time zone of a business (Australia/Sydney when unknown)."""
        business = self.account.tables["businesses"].get(business_id) or {}
        return ZoneInfo(business.get("time_zone_identifier") or "Australia/Sydney")

    # -- lines and invoices ------------------------------------------------------------------------------
    def line(
        self,
        invoice_id: str,
        stamp: str,
        *,
        billable_item: dict | None = None,
        product: dict | None = None,
        quantity="1",
        discount=None,
        monetary: bool = False,
        concession: dict | None = None,
    ) -> dict:
        """One invoice item for a billable item or a product, priced with Cliniko's arithmetic."""
        source = billable_item or product
        tax = self.tax(source.get("tax_id"))
        unit = source["price"] if billable_item else source["price_ex_tax"]
        concession_name = None
        if billable_item and concession:
            special = billable_item.get("_concession_prices", {}).get(concession["id"])
            if special:
                unit, concession_name = special, concession["name"]
        item = {
            "id": self.account.allocate_id(),
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
            "deleted_at": None,
            "invoice_id": invoice_id,
            "billable_item_id": billable_item["id"] if billable_item else None,
            "product_id": product["id"] if product else None,
            "name": source["name"],
            "code": source.get("item_code"),
            "concession_type_name": concession_name,
            "tax_name": tax["name"] if tax else None,
        }
        item.update(price_line(unit, quantity, tax["rate"] if tax else 0, discount, monetary))
        return item

    def set_status(self, invoice: dict, status: int, closed_at: str | None) -> None:
        """Set an invoice's status, its description and closed_at."""
        invoice["status"] = status
        invoice["status_description"] = STATUS_DESCRIPTIONS[status]
        invoice["closed_at"] = closed_at

    def retotal(self, invoice: dict) -> dict:
        """Recompute an invoice's amounts from its live items."""
        items = [i for i in self.account.items_of(invoice["id"]) if not i.get("deleted_at")]
        invoice.update(invoice_totals(items))
        return invoice

    def invoice(
        self,
        stamp: str,
        issue_date: str,
        patient: dict,
        practitioner: dict,
        business: dict,
        appointment: dict | None,
        lines: list[dict],
        status: int = 10,
        closed_at: str | None = None,
        invoice_id: str | None = None,
    ) -> dict:
        """Store an invoice and its items (the items' invoice_id must be `invoice_id`)."""
        inv = {
            "id": invoice_id or self.account.allocate_id(),
            "created_at": stamp,
            "updated_at": stamp,
            "closed_at": None,
            "archived_at": None,
            "deleted_at": None,
            "number": self.account.allocate_number(),
            "issue_date": issue_date,
            "status": None,
            "status_description": None,
            "total_amount": "0.0",
            "net_amount": "0.0",
            "tax_amount": "0.0",
            "discounted_amount": "0.0",
            "notes": None,
            "invoice_to": None,
            "patient_extra_information": None,
            "online_payment_url": None,
            "patient_id": patient["id"] if patient else None,
            "practitioner_id": practitioner["id"] if practitioner else None,
            "business_id": business["id"] if business else None,
            "appointment_id": appointment["id"] if appointment else None,
        }
        self.set_status(inv, status, closed_at)
        for item in lines:
            self.account.add("invoice_items", item)
        inv.update(invoice_totals(lines))
        return self.account.add("invoices", inv)

    def appointment(
        self,
        starts: datetime,
        minutes: int,
        patient: dict,
        practitioner: dict,
        business: dict,
        appointment_type: dict,
        created: datetime,
        **extra,
    ) -> dict:
        """Store an individual appointment."""
        appt = {
            "id": self.account.allocate_id(),
            "created_at": iso(created),
            "updated_at": iso(created),
            "archived_at": None,
            "deleted_at": None,
            "starts_at": iso(starts),
            "ends_at": iso(starts + timedelta(minutes=minutes)),
            "patient_id": patient["id"],
            "practitioner_id": practitioner["id"],
            "business_id": business["id"],
            "appointment_type_id": appointment_type["id"],
            "patient_case_id": None,
            "repeated_from_id": None,
            "patient_name": f"{patient['first_name']} {patient['last_name']}",
            "patient_arrived": False,
            "did_not_arrive": False,
            "cancelled_at": None,
            "cancellation_reason": None,
            "cancellation_reason_description": None,
            "cancellation_note": None,
            "invoice_status": None,
            "treatment_note_status": None,
            "notes": None,
            "telehealth_url": "https://telehealth.example.com/r/" + appointment_type["id"]
            if appointment_type.get("telehealth_enabled")
            else None,
            "booking_ip_address": None,
            "email_reminder_sent": True,
            "sms_reminder_sent": False,
            "has_patient_appointment_notes": False,
            "online_booking_policy_accepted": None,
            "repeat_rule": None,
        }
        appt.update(extra)
        return self.account.add("individual_appointments", appt)

    def visit_lines(
        self, invoice_id: str, stamp: str, appointment_type: dict, patient: dict, features: set[str]
    ) -> list[dict]:
        """The items of a visit's invoice, shaped by the requested features."""
        tables = self.account.tables
        rng = self.rng
        products = [p for p in self.live("products") if p.get("tax_id")]
        lines: list[dict] = []
        if "product_only" not in features:
            if "dna_fee" in features:
                item = next(b for b in tables["billable_items"].values() if b["item_code"] == "CXL")
            else:
                item = tables["billable_items"][appointment_type["billable_item_id"]]
            concession = tables["concession_types"].get(patient.get("concession_type_id") or "")
            if "concession" in features and (concession or {}).get("id") not in item.get("_concession_prices", {}):
                item = next(b for b in tables["billable_items"].values() if b["item_code"] == "STD")
                if (concession or {}).get("id") not in item.get("_concession_prices", {}):
                    concession = tables["concession_types"][next(iter(item.get("_concession_prices", {})))]
            discount, monetary = None, False
            if "percentage_discount" in features:
                discount = rng.choice(["10", "15", "20", "5"])
            elif "monetary_discount" in features:
                discount, monetary = rng.choice(["5.0", "10.0", "20.0"]), True
            lines.append(
                self.line(
                    invoice_id,
                    stamp,
                    billable_item=item,
                    discount=discount,
                    monetary=monetary,
                    concession=concession,
                )
            )
        if "product" in features or "product_only" in features or "nz_tax" in features:
            if "nz_tax" in features:
                product = next(p for p in products if p["item_code"] == "OIL-NZ")
            else:
                product = rng.choice(products)
            discount = "20.0" if "monetary_discount" in features and "product_only" in features else None
            lines.append(
                self.line(
                    invoice_id,
                    stamp,
                    product=product,
                    quantity=rng.choice(["1", "1", "2", "3"]),
                    discount=discount,
                    monetary=discount is not None,
                )
            )
        if "decimal_quantity" in features:
            report = next(b for b in tables["billable_items"].values() if b["item_code"] == "RPT")
            lines.append(
                self.line(
                    invoice_id,
                    stamp,
                    billable_item=report,
                    quantity=rng.choice(["0.25", "0.5", "1.5", "2.75"]),
                )
            )
        return lines

    def credit_for(self, original: dict, stamp: str) -> dict:
        """An 'Open credit' invoice reversing an earlier one (its lines with negative quantities)."""
        invoice_id = self.account.allocate_id()
        lines = []
        for src in self.account.items_of(original["id"]):
            item = dict(src, id=self.account.allocate_id(), invoice_id=invoice_id, created_at=stamp, updated_at=stamp)
            item.update(
                price_line(
                    src["unit_price"],
                    -dec(src["quantity"]),
                    src["tax_rate"],
                    src["discount_percentage"],
                    False,
                )
            )
            lines.append(item)
        tables = self.account.tables
        inv = self.invoice(
            stamp,
            stamp[:10],
            tables["patients"].get(original["patient_id"]),
            tables["practitioners"].get(original["practitioner_id"]),
            tables["businesses"].get(original["business_id"]),
            None,
            lines,
            status=40,
            invoice_id=invoice_id,
        )
        inv["notes"] = f"Reversal of invoice #{original['number']}"
        return inv


def _stamp_between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(int((end - start).total_seconds()), 1)
    return start + timedelta(seconds=rng.randrange(span))


def generate(
    seed: int = 0,
    patients: int = 300,
    invoices: int = 2000,
    now: datetime | None = None,
    key: str = "sandbox-key-au1",
    days: int = 182,
) -> Account:
    """Build a whole clinic account, deterministic for (seed, patients, invoices, now's UTC date, key)."""
    rng = random.Random(f"cliniko-sandbox:{seed}")
    anchor = datetime.combine((now or datetime.now(UTC)).astimezone(UTC).date(), time(), UTC)
    account = Account(key, seed, patients, invoices)
    b = ClinicBuilder(account, rng)
    epoch = anchor - timedelta(days=days + 3 * 365)

    def stamp(offset_days: float) -> str:
        return iso(epoch + timedelta(days=offset_days, seconds=rng.randrange(86_400)))

    _catalogue(account, rng, stamp)
    _people(account, rng, stamp, patients, anchor, days)
    account.settings = _settings(account, seed)
    _invoices(b, invoices, anchor, days)
    account.sync_concession_prices()  # derived ids and no randomness: the rest of the data is unchanged
    return account


def _catalogue(account: Account, rng: random.Random, stamp) -> None:
    add, new_id = account.add, account.allocate_id
    taxes = []
    for name, rate in TAXES:
        s = stamp(1)
        taxes.append(
            add(
                "taxes",
                {
                    "id": new_id(),
                    "created_at": s,
                    "updated_at": s,
                    "name": name,
                    "rate": float(rate),
                    "amount": float(rate),
                },
            )
        )
    concessions = []
    for name in CONCESSIONS:
        s = stamp(2)
        concessions.append(add("concession_types", {"id": new_id(), "created_at": s, "updated_at": s, "name": name}))
    items = []
    for name, code, kind, price, tax_i, conc, archived in BILLABLE_ITEMS:
        s = stamp(3)
        items.append(
            add(
                "billable_items",
                {
                    "id": new_id(),
                    "created_at": s,
                    "updated_at": stamp(400) if archived else s,
                    "archived_at": stamp(400) if archived else None,
                    "name": name,
                    "item_code": code,
                    "item_type": kind,
                    "price": price,
                    "tax_id": taxes[tax_i]["id"],
                    "_concession_prices": {concessions[c]["id"]: p for c, p in conc.items()},
                },
            )
        )
    products = []
    for name, code, price, tax_i, cost, archived in PRODUCTS:
        s = stamp(4)
        rate = dec(TAXES[tax_i][1])
        products.append(
            add(
                "products",
                {
                    "id": new_id(),
                    "created_at": s,
                    "updated_at": s,
                    "archived_at": stamp(500) if archived else None,
                    "name": name,
                    "item_code": code,
                    "price_ex_tax": dec_str(price),
                    "price_including_tax": dec_str((dec(price) * (1 + rate / 100)).quantize(dec("0.01"))),
                    "cost_price": dec_str(cost),
                    "stock_level": rng.randrange(0, 60),
                    "serial_number": None,
                    "notes": None,
                    "product_supplier_name": "Allied Physio Supplies",
                    "product_supplier_id": None,
                    "tax_id": taxes[tax_i]["id"],
                },
            )
        )
    for name, minutes, item_i, product_i, category, colour, telehealth in APPOINTMENT_TYPES:
        s = stamp(5)
        add(
            "appointment_types",
            {
                "id": new_id(),
                "created_at": s,
                "updated_at": s,
                "archived_at": None,
                "name": name,
                "description": None,
                "category": category,
                "color": colour,
                "duration_in_minutes": minutes,
                "max_attendees": 1,
                "billable_item_id": items[item_i]["id"],
                "product_id": products[product_i]["id"] if product_i is not None else None,
                "treatment_note_template_id": None,
                "show_in_online_bookings": True,
                "telehealth_enabled": telehealth,
                "online_payments_enabled": False,
                "online_payments_mode": None,
                "deposit_price": None,
                "add_deposit_to_account_credit": False,
                "online_bookings_lead_time_hours": 0,
                "appointment_confirmation_template_ids": [],
                "appointment_reminder_template_ids": [],
            },
        )


def _people(account: Account, rng: random.Random, stamp, n_patients: int, anchor: datetime, days: int) -> None:
    add, new_id = account.add, account.allocate_id
    type_ids = list(account.tables["appointment_types"])
    businesses = []
    for spec in BUSINESSES:
        s = stamp(0)
        archived = spec.get("archived")
        businesses.append(
            add(
                "businesses",
                {
                    "id": new_id(),
                    "created_at": s,
                    "updated_at": stamp(700) if archived else s,
                    "archived_at": stamp(700) if archived else None,
                    "deleted_at": None,
                    "business_name": spec["business_name"],
                    "display_name": spec["business_name"],
                    "label": None,
                    "address_1": spec["address_1"],
                    "address_2": None,
                    "city": spec["city"],
                    "state": spec["state"],
                    "post_code": spec["post_code"],
                    "country": "Australia",
                    "country_code": "AU",
                    "business_registration_name": "ABN",
                    "business_registration_value": spec["business_registration_value"],
                    "additional_information": None,
                    "additional_invoice_information": "Thank you for your visit.",
                    "contact_information": spec["phone"],
                    "email_reply_to": "reception@harbourside.example.com",
                    "website_address": "https://harbourside.example.com",
                    "time_zone": spec["time_zone"],
                    "time_zone_identifier": spec["time_zone_identifier"],
                    "show_in_online_bookings": not archived,
                    "appointment_reminders_enabled": True,
                    "appointment_type_ids": list(type_ids),
                },
            )
        )
    for first, last, title, designation, business_i, active in PRACTITIONERS:
        s = stamp(6)
        add(
            "practitioners",
            {
                "id": new_id(),
                "created_at": s,
                "updated_at": s,
                "first_name": first,
                "last_name": last,
                "title": title,
                "display_name": f"{title + ' ' if title else ''}{first} {last}",
                "label": None,
                "designation": designation,
                "description": None,
                "active": active,
                "show_in_online_bookings": active,
                "user_id": str(int(new_id()) + 7),
                "default_appointment_type_id": type_ids[1],
                "_business_ids": [businesses[i]["id"] for i in business_i],
            },
        )
    concessions = list(account.tables["concession_types"])
    fixed = {i: (f, la) for i, f, la in FIXED_NAMES}
    # patients join before the invoice range starts, so nobody is invoiced before they exist
    created = sorted(_stamp_offsets(rng, n_patients, 10, 3 * 365))
    epoch = anchor - timedelta(days=days + 3 * 365)
    for i in range(n_patients):
        first, last = fixed.get(i) or (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        state = "NSW" if rng.random() < 0.6 else "WA"
        suburb, post_code = rng.choice(SUBURBS[state])
        created_at = iso(epoch + timedelta(seconds=created[i]))
        email = (
            None if (i == MISSING_EMAIL or rng.random() < 0.12) else f"{_ascii(first)}.{_ascii(last)}{i}@example.com"
        )
        mobile = f"04{rng.randrange(10, 99)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}"
        phones = (
            []
            if rng.random() < 0.05
            else [
                {
                    "number": mobile,
                    "normalized_number": "+61" + mobile.replace(" ", "")[1:],
                    "phone_type": "Mobile",
                }
            ]
        )
        dob = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 75))
        patient = add(
            "patients",
            {
                "id": new_id(),
                "created_at": created_at,
                "updated_at": created_at,
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
                "patient_phone_numbers": phones,
                "address_1": f"{rng.randrange(1, 300)} {rng.choice(STREETS)}",
                "address_2": None,
                "address_3": None,
                "city": suburb,
                "state": state,
                "post_code": post_code,
                "country": "Australia",
                "date_of_birth": dob.isoformat(),
                "sex": rng.choice(["Female", "Male", None]),
                **PATIENT_DEFAULTS,
                "receives_confirmation_emails": email is not None,
                "reminder_type": "SMS & Email" if email else "SMS",
                "referral_source": None,
                "old_reference_id": None,
                "time_zone": None,
                "referring_doctor_id": None,
                "concession_type_id": rng.choice(concessions) if rng.random() < 0.08 else None,
            },
        )
        if rng.random() < 0.3:
            patient["medicare"] = str(rng.randrange(2000000000, 6999999999))
            patient["medicare_reference_number"] = str(rng.randrange(1, 9))
    rows = account.records("patients")
    late = iso(anchor - timedelta(days=20))
    if len(rows) > MERGED:
        rows[MERGED].update(
            merged_at=late, archived_at=late, updated_at=late, merged_with_patient_id=rows[MERGED_INTO]["id"]
        )
    if len(rows) > DELETED:
        rows[DELETED].update(
            archived_at=iso(anchor - timedelta(days=9)),
            deleted_at=iso(anchor - timedelta(days=8)),
            updated_at=iso(anchor - timedelta(days=8)),
        )
    if len(rows) > ARCHIVED:
        rows[ARCHIVED].update(archived_at=iso(anchor - timedelta(days=40)), updated_at=iso(anchor - timedelta(days=40)))


def _stamp_offsets(rng: random.Random, n: int, low_days: int, high_days: int) -> list[int]:
    return [rng.randrange(low_days * 86_400, high_days * 86_400) for _ in range(n)]


def _settings(account: Account, seed: int) -> dict:
    names = [
        "Harbourside Health Group",
        "Bayside Allied Health",
        "Northside Physio Co",
        "Coastal Movement Clinics",
    ]
    name = names[seed % len(names)]
    sub = name.lower().replace(" ", "-")
    return {
        "account": {
            "id": str(100_000 + seed),
            "name": name,
            "country": "Australia",
            "country_code": "AU",
            "currency_symbol": "$",
            "subdomain": sub,
            "has_time_travelers": False,
            "time_zone_support": True,
            "email_from": f"reception@{sub}.example.com",
            "first_name": "Amelia",
            "last_name": "Chen",
            "compliance": {"has_hipaa_compliance_conflicts": False, "hipaa_compliance-conflict_messages": []},
        },
        "calendar": {
            "start_hour": 7,
            "end_hour": 20,
            "timeslot_height_in_pixels": 20,
            "timeslot_size_in_minutes": 15,
            "show_current_time_indicator": True,
            "multiple_appointments_gap": False,
        },
        "documents_and_printing": {"logo_url": None, "logo_height": 80},
        "email": {"patient_accept_email_marketing_by_default": False},
        "integrations": {
            "mail_chimp": {"enabled": False},
            "xero": {"enabled": False},
            "medipass": {"enabled": False},
        },
        "online_payments": {"activated": False},
        "reminders": {"default_reminder_type": "SMS & Email"},
        "sms": {
            "alphanumeric_source_number_required": False,
            "default_alphanumeric_source_number": "Harbourside",
            "max_message_length": 612,
            "number_of_usable_characters_per_message": 153,
            "patient_accept_sms_marketing_by_default": False,
            "replies_supported": True,
        },
        "terminology": {"patient": "patient", "titles": ["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx"]},
        "wait_list": {"default_wait_list_expiry_period": 30},
    }


def _features(rng: random.Random, index: int, forced: dict[int, str]) -> set[str]:
    f: set[str] = set()
    roll = rng.random()
    if roll < 0.08:
        f.add("percentage_discount")
    elif roll < 0.13:
        f.add("monetary_discount")
    if rng.random() < 0.2:
        f.add("product")
    if rng.random() < 0.03:
        f.add("decimal_quantity")
    if rng.random() < 0.04:
        f.add("product_only")
    if rng.random() < 0.02:
        f.add("dna_fee")
    if rng.random() < 0.01:
        f.add("nz_tax")
    status_roll = rng.random()
    for name, p in (
        ("closed", 0.02),
        ("credit", 0.02),
        ("archived", 0.02),
        ("deleted", 0.01),
        ("edited_after_paid", 0.03),
        ("reopened_by_edit", 0.005),
    ):
        if status_roll < p:
            f.add(name)
            break
        status_roll -= p
    if index in forced:
        return {forced[index]}  # alone, so that no random feature hides it
    if "product_only" in f:
        f -= {"dna_fee", "concession", "percentage_discount", "decimal_quantity"}
    return f


def _invoices(b: ClinicBuilder, n: int, anchor: datetime, days: int) -> None:
    account, rng, tables = b.account, b.rng, b.account.tables
    practitioners = list(tables["practitioners"].values())
    active = [p for p in practitioners if p["active"]]
    inactive_until = anchor - timedelta(days=days // 2)
    types = list(tables["appointment_types"].values())
    patients = [p for p in tables["patients"].values() if not p.get("merged_at")]
    deleted_patient = next((p for p in patients if p.get("deleted_at")), None)
    forced = {int((k + 0.5) * n / len(REQUIRED_FEATURES)): f for k, f in enumerate(REQUIRED_FEATURES)} if n else {}

    slots = []
    for _ in range(n):
        day = anchor.date() - timedelta(days=1 + rng.randrange(days))
        if day.weekday() == 6:
            day -= timedelta(days=1)
        slots.append((day, rng.randrange(7 * 4, 19 * 4), rng.random()))
    slots.sort()
    paid_pool: list[dict] = []
    for i, (day, quarter, _) in enumerate(slots):
        features = _features(rng, i, forced)
        practitioner = rng.choice(practitioners if rng.random() < 0.05 else active)
        if not practitioner["active"] and datetime.combine(day, time(), UTC) > inactive_until:
            practitioner = active[i % len(active)]
        business = tables["businesses"][rng.choice(practitioner["_business_ids"])]
        tz = b.business_tz(business["id"])
        atype = rng.choice(types)
        starts = datetime.combine(day, time(quarter // 4, (quarter % 4) * 15), tz).astimezone(UTC)
        ends = starts + timedelta(minutes=atype["duration_in_minutes"])
        created = ends + timedelta(minutes=rng.randrange(1, 25), seconds=rng.randrange(60))
        if "deleted_patient" in features and deleted_patient is not None:
            patient = deleted_patient
        else:
            patient = rng.choice(patients)
            if patient.get("deleted_at") and iso(created) >= patient["archived_at"]:
                patient = patients[0]
        if "credit" in features and paid_pool:
            original = paid_pool.pop(rng.randrange(len(paid_pool)))
            b.credit_for(original, iso(created))
            continue
        features.discard("credit")
        stamp = iso(created)
        appointment = None
        if "product_only" not in features:
            booked = starts - timedelta(days=rng.randrange(0, 21), minutes=rng.randrange(0, 600))
            dna = "dna_fee" in features
            appointment = b.appointment(
                starts,
                atype["duration_in_minutes"],
                patient,
                practitioner,
                business,
                atype,
                booked,
                patient_arrived=not dna,
                did_not_arrive=dna,
                updated_at=stamp,
            )
        invoice_id = account.allocate_id()
        lines = b.visit_lines(invoice_id, stamp, atype, patient, features)
        inv = b.invoice(
            stamp,
            starts.astimezone(tz).date().isoformat(),
            patient,
            practitioner,
            business,
            appointment,
            lines,
            invoice_id=invoice_id,
        )
        _settle(b, inv, features, created, anchor)
        if appointment is not None:
            appointment["invoice_status"] = inv["status"]
        if inv["status"] == 20 and not inv["archived_at"] and not inv["deleted_at"]:
            paid_pool.append(inv)
        if rng.random() < 0.04:
            inv["invoice_to"] = "NIB Health Funds\nPO Box 1234\nNewcastle NSW 2300"
            inv["patient_extra_information"] = f"Claim no. {rng.randrange(10**7, 10**8)}"
    _extra_appointments(b, max(3, n // 8), anchor, days, patients, active, types)


def _settle(b: ClinicBuilder, inv: dict, features: set[str], created: datetime, anchor: datetime) -> None:
    """Give a fresh invoice its life so far: payment, write-off, edits, archiving or deletion."""
    rng, account = b.rng, b.account
    latest = anchor - timedelta(minutes=1)
    age_days = (anchor - created).days
    delay_roll = rng.random()
    delay = (
        timedelta(minutes=rng.randrange(0, 10))
        if delay_roll < 0.7
        else timedelta(days=rng.randrange(1, 15))
        if delay_roll < 0.9
        else timedelta(days=rng.randrange(15, 45))
    )
    paid_at = created + delay
    pay = "open" not in features and paid_at <= latest and (age_days > 14 or rng.random() < 0.6)
    if "deleted" in features:
        pay = False
    if {"edited_after_paid", "reopened_by_edit", "archived"} & features and not pay:
        paid_at, pay = min(created + timedelta(minutes=5), latest), True
    if pay:
        b.set_status(inv, 20, iso(paid_at))
        inv["updated_at"] = iso(paid_at)
    if "closed" in features:
        closed = min(created + timedelta(days=rng.randrange(20, 60)), latest)
        b.set_status(inv, 30, iso(closed))
        inv["updated_at"] = iso(closed)
        inv["notes"] = "Balance written off"
    last = max(created, paid_at if pay else created)
    edit_at = min(last + timedelta(days=rng.randrange(1, 10), minutes=rng.randrange(600)), latest)
    edit_at = max(edit_at, last)
    items = account.items_of(inv["id"])
    if "edited_after_paid" in features and inv["status"] == 20:
        inv["patient_extra_information"] = f"Claim no. {rng.randrange(10**7, 10**8)}"
        inv["notes"] = "Updated after payment: claim number added"
        items[0]["name"] = items[0]["name"] + " (amended)"
        items[0]["updated_at"] = iso(edit_at)
        inv["updated_at"] = iso(edit_at)
    if "reopened_by_edit" in features and inv["status"] == 20:
        product = rng.choice([p for p in b.live("products") if p.get("tax_id")])
        account.add("invoice_items", b.line(inv["id"], iso(edit_at), product=product))
        b.retotal(inv)
        b.set_status(inv, 10, None)
        inv["updated_at"] = iso(edit_at)
        inv["notes"] = "Item added after payment; balance owing"
    if "archived" in features or "deleted" in features:
        field = "archived_at" if "archived" in features else "deleted_at"
        when = iso(max(edit_at, created))
        inv[field] = when
        inv["updated_at"] = when
        for item in items:
            item[field] = when
            item["updated_at"] = when


def _extra_appointments(
    b: ClinicBuilder, count: int, anchor: datetime, days: int, patients, practitioners, types
) -> None:
    """Appointments without invoices: cancellations, non-arrivals and future bookings."""
    rng = b.rng
    tables = b.account.tables
    live_patients = [p for p in patients if not p.get("archived_at")] or patients
    if not live_patients or not practitioners or not types:
        return
    for i in range(count):
        practitioner = rng.choice(practitioners)
        business = tables["businesses"][rng.choice(practitioner["_business_ids"])]
        tz = b.business_tz(business["id"])
        atype = rng.choice(types)
        kind = ("cancelled", "did_not_arrive", "future", "archived")[i % 4 if i < 4 else rng.choice((0, 0, 1, 2))]
        offset = rng.randrange(1, 15) if kind == "future" else -rng.randrange(1, days)
        day = anchor.date() + timedelta(days=offset)
        starts = datetime.combine(day, time(rng.randrange(8, 18), rng.choice((0, 15, 30, 45))), tz).astimezone(UTC)
        booked = min(starts, anchor) - timedelta(days=rng.randrange(1, 20))
        extra: dict = {}
        if kind == "cancelled":
            reason = rng.choice(list(CANCELLATION_REASONS))
            cancelled = starts - timedelta(hours=rng.randrange(2, 48))
            extra = {
                "cancelled_at": iso(cancelled),
                "cancellation_reason": reason,
                "updated_at": iso(cancelled),
                "cancellation_reason_description": CANCELLATION_REASONS[reason],
                "cancellation_note": "Patient phoned reception",
            }
        elif kind == "did_not_arrive":
            extra = {"did_not_arrive": True, "updated_at": iso(starts + timedelta(minutes=30))}
        elif kind == "archived":
            extra = {
                "archived_at": iso(starts - timedelta(days=1)),
                "updated_at": iso(starts - timedelta(days=1)),
            }
        b.appointment(
            starts,
            atype["duration_in_minutes"],
            rng.choice(live_patients),
            practitioner,
            business,
            atype,
            booked,
            **extra,
        )
