"""Forms of the Settings and Mappings screens (Flask-WTF: CSRF on every POST).

The fields only carry text; every value is validated by webapp.sync.settings.PracticeSettings.from_dict
(the single source of truth), whose message is shown next to the field."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField

from webapp.practice_settings import EXCLUDE_KINDS, FIELD_LABELS, MANAGED


class _Select(SelectField):
    """A select whose value is checked by PracticeSettings, not by WTForms (so its message is shown)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("validate_choice", False)
        super().__init__(*args, **kwargs)


class SettingsForm(FlaskForm):
    """Every setting of PracticeSettings except the default accounts (chosen on the practice page)."""

    invoice_source = _Select("Xero invoices come from", choices=[
        ("invoices", "Cliniko invoices"), ("appointments", "Completed appointments")])
    appointment_completion = _Select("An appointment is complete when", choices=[
        ("arrived", "the patient is marked arrived"),
        ("ended", "it has ended (not cancelled, not marked did-not-arrive)")])
    only_appointment_types = SelectMultipleField("Invoice only these appointment types")
    claim_appointment_types = SelectMultipleField("Appointment types billed as claims (never invoiced)")
    only_businesses = SelectMultipleField("Invoice only appointments at these businesses")
    dry_run = BooleanField("Dry run: build and show what would be sent, send nothing")
    contact_timing = _Select("Create the Xero contact", choices=[
        ("first_invoice", "with the patient's first invoice"), ("first_booking", "at the patient's first booking")])
    invoice_status = _Select("Invoice status", choices=[("AUTHORISED", "Approved (AUTHORISED)"),
                                                        ("DRAFT", "Draft (DRAFT)")])
    invoice_number_prefix = StringField("Invoice number prefix")
    reference_template = StringField("Reference")
    line_description_template = StringField("Line description")
    line_amount_types = _Select("Line amounts", choices=[("Exclusive", "Tax exclusive (Exclusive)"),
                                                         ("Inclusive", "Tax inclusive (Inclusive)")])
    due_days = StringField("Due days after issue")
    contact_number_prefix = StringField("Contact number prefix")
    contact_details = _Select("Contact details sent", choices=[
        ("name", "Name only"), ("email", "Name and email"), ("full", "Name, email, phone and address")])
    sync_from = StringField("Sync invoices issued on or after", render_kw={"type": "date"})
    exclude_billable_items = SelectMultipleField("Exclude billable items")
    exclude_products = SelectMultipleField("Exclude products")
    exclude_businesses = SelectMultipleField("Exclude businesses")
    exclude_practitioners = SelectMultipleField("Exclude practitioners")
    skip_zero_total = BooleanField("Skip invoices with a zero total")
    only_paid = BooleanField("Send only paid invoices")
    closed_policy = _Select("Closed invoices (Cliniko status Closed)", choices=[
        ("ignore", "Ignore: leave the Xero invoice as it is"), ("void", "Void the Xero invoice")])
    rounding_tolerance = StringField("Rounding tolerance (dollars)")
    time_zone = StringField("Time zone")

    def fill_choices(self, catalogue: dict[str, list], current: dict[str, list[str]]) -> None:
        """Exclusion choices from the Cliniko catalogue, plus ids already excluded that it no longer lists."""
        for name, kind in EXCLUDE_KINDS.items():
            records = catalogue.get(kind, [])
            choices = [(r.cliniko_id, r.name + (" (archived)" if r.archived else "")) for r in records]
            known = {r.cliniko_id for r in records}
            choices += [(cid, f"#{cid} (not in the Cliniko catalogue)") for cid in current.get(name, [])
                        if cid not in known]
            getattr(self, name).choices = choices

    def values(self) -> dict:
        """The submitted settings, keyed by setting name."""
        return {name: getattr(self, name).data for name in MANAGED}


class MappingFormBase(FlaskForm):
    """One kind's mapping table; fields named `<setting>__<cliniko id>` are added per row."""


class RefreshForm(FlaskForm):
    """A button that POSTs (refresh the Cliniko catalogue or the Xero lists)."""


def field_name(name: str, cliniko_id: str) -> str:
    return f"{name}__{cliniko_id}"


def mapping_form(kind_fields: tuple[str, ...], rows: list, current: dict, picks, formdata=None) -> FlaskForm:
    """A form with one select per row and Xero choice; choices are the active ones, plus the current value
    when Xero has archived it (shown as such, so it is not lost silently)."""
    attrs = {}
    data = {}
    for record in rows:
        mapping = current.get(record.cliniko_id)
        for name in kind_fields:
            value = getattr(mapping, name) if mapping is not None else None
            choices = [("", "— default —")] + list(picks.choices(name))
            if value and value not in {c[0] for c in choices}:
                choices.append((value, picks.label(name, value) or f"{value} (not in Xero's lists)"))
            key = field_name(name, record.cliniko_id)
            attrs[key] = SelectField(f"{FIELD_LABELS[name]} for {record.name}", choices=choices,
                                     render_kw={"data-testid": key})
            data[key] = value or ""
    form_class = type("MappingForm", (MappingFormBase,), attrs)
    return form_class(formdata=formdata, data=data)
