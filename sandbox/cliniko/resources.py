"""The Cliniko resources the emulator serves: filterable fields, relations and default scopes.

Filter tables are the `q[]` tables of Cliniko's published OpenAPI file (2023); relations are
rendered link-only (`{"links": {"self": url}}`) as Cliniko does.
"""

from dataclasses import dataclass, field

INT64, INTEGER, DECIMAL, DATE, DATETIME, STRING, BOOLEAN, ARRAY = (
    "int64",
    "integer",
    "decimal",
    "date",
    "date-time",
    "string",
    "boolean",
    "array",
)

_STAMPS = {"id": INT64, "created_at": DATETIME, "updated_at": DATETIME}


@dataclass(frozen=True)
class Resource:
    """One list resource: its `q[]` fields, single-record filters, relations and hidden-by-default fields."""

    name: str
    filters: dict[str, str]
    single_filters: dict[str, str] = field(default_factory=dict)
    # output key -> (foreign-key field stored on the record, target collection)
    relations: dict[str, tuple[str, str]] = field(default_factory=dict)
    # output key -> path (under /v1) of a related collection, with {id}
    collections: dict[str, str] = field(default_factory=dict)
    # records whose value here is not null are left out of lists unless a filter names the field
    hidden_unless_filtered: tuple[str, ...] = ()
    # schema fields rendered with this value when the stored record has none (e.g. `repeats: null`)
    defaults: dict = field(default_factory=dict)


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in [
        Resource(
            "invoices",
            {
                **_STAMPS,
                "archived_at": DATETIME,
                "deleted_at": DATETIME,
                "appointment_id": INT64,
                "business_id": INT64,
                "issue_date": DATE,
                "number": INTEGER,
                "patient_id": INT64,
                "practitioner_id": INT64,
                "status": INTEGER,
            },
            {"archived_at": DATETIME, "deleted_at": DATETIME},
            {
                "appointment": ("appointment_id", "appointments"),
                "business": ("business_id", "businesses"),
                "patient": ("patient_id", "patients"),
                "practitioner": ("practitioner_id", "practitioners"),
            },
            {"invoice_items": "invoices/{id}/invoice_items"},
            ("archived_at", "deleted_at"),
        ),
        Resource(
            "invoice_items",
            {**_STAMPS, "archived_at": DATETIME, "deleted_at": DATETIME, "invoice_id": INT64},
            {"archived_at": DATETIME, "deleted_at": DATETIME},
            {
                "invoice": ("invoice_id", "invoices"),
                "billable_item": ("billable_item_id", "billable_items"),
                "product": ("product_id", "products"),
            },
            {},
            ("archived_at", "deleted_at"),
        ),
        Resource(
            "patients",
            {
                **_STAMPS,
                "archived_at": DATETIME,
                "date_of_birth": DATE,
                "email": STRING,
                "first_name": STRING,
                "last_name": STRING,
                "old_reference_id": STRING,
                "preferred_first_name": STRING,
            },
            {"archived_at": DATETIME},
            {
                "concession_type": ("concession_type_id", "concession_types"),
                "merged_with_patient": ("merged_with_patient_id", "patients"),
                "referring_doctor": ("referring_doctor_id", "contacts"),
            },
            {
                "appointments": "patients/{id}/appointments",
                "attendees": "patients/{id}/attendees",
                "invoices": "patients/{id}/invoices",
                "medical_alerts": "patients/{id}/medical_alerts",
                "patient_attachments": "patients/{id}/patient_attachments",
            },
            # deleted_at is not a documented patient filter, so deleted patients never show
            ("archived_at", "deleted_at"),
        ),
        Resource(
            "practitioners",
            {**_STAMPS, "user_id": INT64, "show_in_online_bookings": BOOLEAN},
            {},
            {
                "user": ("user_id", "users"),
                "default_appointment_type": ("default_appointment_type_id", "appointment_types"),
            },
            {
                "appointment_types": "practitioners/{id}/appointment_types",
                "appointments": "practitioners/{id}/appointments",
                "invoices": "practitioners/{id}/invoices",
                "practitioner_reference_numbers": "practitioners/{id}/practitioner_reference_numbers",
            },
        ),
        Resource(
            "businesses",
            {
                **_STAMPS,
                "archived_at": DATETIME,
                "deleted_at": DATETIME,
                "appointment_type_ids": ARRAY,
                "show_in_online_bookings": BOOLEAN,
            },
            {"archived_at": DATETIME, "deleted_at": DATETIME},
            {},
            {
                "appointments": "businesses/{id}/appointments",
                "practitioners": "businesses/{id}/practitioners",
            },
            ("archived_at", "deleted_at"),
        ),
        Resource(
            "billable_items",
            {**_STAMPS, "archived_at": DATETIME, "tax_id": INT64},
            {"archived_at": DATETIME},
            {"tax": ("tax_id", "taxes")},
            {},
            ("archived_at",),
        ),
        Resource(
            "products",
            {**_STAMPS, "archived_at": DATETIME, "name": STRING, "tax_id": INT64},
            {"archived_at": DATETIME},
            {"tax": ("tax_id", "taxes"), "product_supplier": ("product_supplier_id", "product_suppliers")},
            {},
            ("archived_at",),
        ),
        Resource("taxes", dict(_STAMPS)),
        Resource("concession_types", dict(_STAMPS)),
        Resource(
            "concession_prices",
            {**_STAMPS, "billable_item_id": INT64, "concession_type_id": INT64, "price": DECIMAL},
            {},
            {
                "billable_item": ("billable_item_id", "billable_items"),
                "concession_type": ("concession_type_id", "concession_types"),
            },
        ),
        Resource(
            "appointment_types",
            {
                **_STAMPS,
                "archived_at": DATETIME,
                "category": STRING,
                "online_payments_mode": STRING,
                "show_in_online_bookings": BOOLEAN,
                "appointment_confirmation_template_ids": ARRAY,
                "appointment_reminder_template_ids": ARRAY,
            },
            {"archived_at": DATETIME},
            {
                "billable_item": ("billable_item_id", "billable_items"),
                "product": ("product_id", "products"),
                "treatment_note_template": ("treatment_note_template_id", "treatment_note_templates"),
            },
            {"practitioners": "appointment_types/{id}/practitioners"},
            ("archived_at",),
        ),
        Resource(
            "individual_appointments",
            {
                **_STAMPS,
                "archived_at": DATETIME,
                "deleted_at": DATETIME,
                "appointment_type_id": INT64,
                "business_id": INT64,
                "cancelled_at": DATETIME,
                "ends_at": DATETIME,
                "patient_id": INT64,
                "practitioner_id": INT64,
                "repeated_from_id": INT64,
                "starts_at": DATETIME,
            },
            {"archived_at": DATETIME, "deleted_at": DATETIME, "cancelled_at": DATETIME},
            {
                "appointment_type": ("appointment_type_id", "appointment_types"),
                "business": ("business_id", "businesses"),
                "patient": ("patient_id", "patients"),
                "patient_case": ("patient_case_id", "patient_cases"),
                "practitioner": ("practitioner_id", "practitioners"),
                "repeated_from": ("repeated_from_id", "individual_appointments"),
            },
            {
                "attendees": "individual_appointments/{id}/attendees",
                "conflicts": "individual_appointments/{id}/conflicts",
            },
            ("archived_at", "deleted_at", "cancelled_at"),
            {"repeats": None},
        ),
    ]
}

# Collections stored by the emulator (resources above plus records kept only for links).
TABLES = tuple(RESOURCES)


def render(resource: Resource, record: dict, base: str) -> dict:
    """A stored record as Cliniko returns it: relations as links, absolute URLs, no internal keys."""
    fk_fields = {fk for fk, _ in resource.relations.values()}
    out = {k: v for k, v in record.items() if not k.startswith("_") and k not in fk_fields}
    for key, value in resource.defaults.items():
        out.setdefault(key, value)
    for key, (fk, target) in resource.relations.items():
        value = record.get(fk)
        if value is not None:
            out[key] = {"links": {"self": f"{base}/{target}/{value}"}}
    for key, path in resource.collections.items():
        out[key] = {"links": {"self": f"{base}/{path.format(id=record['id'])}"}}
    out["links"] = {"self": f"{base}/{resource.name}/{record['id']}"}
    return out
