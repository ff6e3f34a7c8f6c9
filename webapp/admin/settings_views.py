"""Practice settings and mappings screens (SPEC §8 items 2 and 3).

- `/settings/`: the practices in scope, each with links to its two screens (the menu item).
- `/practices/<id>/settings/`: invoice, contact and filter options, Closed-status policy, rounding, time zone.
- `/practices/<id>/mappings/`: Cliniko billable items, products, practitioners, businesses and taxes beside
  the Xero account / payment account / tracking option / tax rate chosen for each.

Admins edit; support users read (no forms; POST → 403); another practice → 404.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user

from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.admin.dashboard import practices_in_scope
from webapp.admin.settings_forms import RefreshForm, SettingsForm, field_name, mapping_form
from webapp.audit import record
from webapp.extensions import db
from webapp.practice_settings import (
    EXCLUDE_KINDS,
    FIELD_LABELS,
    GROUPS,
    KIND_LABELS,
    MAPPING_FIELDS,
    catalogue,
    default_text,
    effective,
    mappings_of,
    pickers,
    save_mappings,
    save_settings,
    stored_or_default,
    validate,
)
from webapp.sync.settings import PracticeSettings, SettingsError

HELP = {
    "invoice_source": "Cliniko invoices: every Cliniko invoice becomes a Xero invoice. Completed appointments: "
                      "every completed appointment becomes a Xero invoice priced from its appointment type "
                      "(concession prices included), and Cliniko invoices are not read. Switching never "
                      "invoices a visit twice.",
    "appointment_completion": "Appointment mode only: which appointments count as done.",
    "only_appointment_types": "Appointment mode only. None chosen: every type is invoiced.",
    "claim_appointment_types": "Appointment mode only: insurer-billed types; their appointments are skipped "
                               "with that reason.",
    "only_businesses": "Appointment mode only. None chosen: every business.",
    "dry_run": "Rows are discovered and their payloads shown on each row's page, but nothing is sent to Xero. "
               "Turn it off to send them.",
    "contact_timing": "At first booking, a patient's contact is in Xero before anything is invoiced "
                      "(with only the details chosen below).",
    "invoice_status": "AUTHORISED invoices are approved in Xero and can take payments; DRAFT ones wait for "
                      "someone to approve them (payments wait too).",
    "invoice_number_prefix": "Put before the Cliniko invoice number to make Xero's InvoiceNumber, e.g. CLK-.",
    "reference_template": "Placeholders: {number}, {patient}, {practitioner}, {business}, {appointment_date}.",
    "line_description_template": "Placeholders: {item}, {code}, {practitioner}, {appointment_date}.",
    "line_amount_types": "Cliniko's API gives prices before tax, so Exclusive is right for most practices.",
    "due_days": "DueDate = issue date + this many days (0–365).",
    "contact_number_prefix": "ContactNumber = prefix + Cliniko patient id; it is how a patient's contact is found "
                             "again. Changing it makes new contacts for every patient.",
    "contact_details": "How much of the patient's details is copied to Xero.",
    "sync_from": "Invoices issued before this date are skipped. Empty: no limit.",
    "exclude_billable_items": "Lines for these are dropped; an invoice with only excluded lines is skipped.",
    "exclude_products": "Lines for these are dropped; an invoice with only excluded lines is skipped.",
    "exclude_businesses": "Invoices of these businesses are skipped.",
    "exclude_practitioners": "Invoices of these practitioners are skipped.",
    "skip_zero_total": "Invoices totalling $0.00 are not sent.",
    "only_paid": "For practices that invoice insurers elsewhere: unpaid invoices are skipped until paid.",
    "closed_policy": "What a Cliniko invoice moved to Closed means for its Xero invoice.",
    "rounding_tolerance": "Up to this difference between Cliniko's total and Xero's, a rounding line goes to "
                          "the rounding account; beyond it the invoice fails (0–1.00).",
    "time_zone": "Used for payment dates when the Cliniko business has no time zone (IANA name).",
}


class _PracticeView(SecuredView, BaseView):
    """Per-practice screens: not in the menu (reached from the Settings list and the practice page)."""

    def is_visible(self) -> bool:
        return False

    @staticmethod
    def _practice(practice_id: int, write: bool = False):
        return practice_in_scope(practice_id, admin=write)


class SettingsIndexView(SecuredView, BaseView):
    """The menu item: practices in scope with links to their settings and mappings."""

    @expose("/")
    def index(self):
        return self.render("admin/settings/index.html", practices=practices_in_scope())


class PracticeSettingsView(_PracticeView):
    """One practice's sync settings."""

    @expose("/", methods=["GET", "POST"])
    def index(self, practice_id: int):
        if request.method == "POST":
            return self._save(practice_id)
        practice = self._practice(practice_id)
        return self._page(practice, self._form(practice))

    def _form(self, practice, formdata=None) -> SettingsForm:
        stored = stored_or_default(practice)
        form = SettingsForm(formdata=formdata, data=stored)
        form.fill_choices({kind: catalogue(practice.id, kind) for kind in EXCLUDE_KINDS.values()},
                          {name: list(stored.get(name) or []) for name in EXCLUDE_KINDS})
        return form

    def _page(self, practice, form, status=200):
        try:
            settings, problem = effective(practice), None
        except SettingsError as exc:
            settings, problem = PracticeSettings(), str(exc)
        stored = stored_or_default(practice)
        names = {name: {r.cliniko_id: r.name for r in catalogue(practice.id, kind)}
                 for name, kind in EXCLUDE_KINDS.items()}
        return self.render("admin/settings/practice.html", practice=practice, form=form, groups=GROUPS,
                           help=HELP, settings=settings, stored=stored, names=names, problem=problem,
                           exclude_names=EXCLUDE_KINDS), status

    def _save(self, practice_id: int):
        practice = self._practice(practice_id, write=True)
        form = self._form(practice, formdata=request.form)
        if not form.validate():
            return self._page(practice, form, status=400)
        values = form.values()
        _, errors = validate(values)
        if errors:
            for name, message in errors.items():
                getattr(form, name, form.csrf_token).errors.append(message)
            flash("Nothing was saved: correct the settings marked below.", "error")
            return self._page(practice, form, status=400)
        result = save_settings(practice, current_user, values)
        flash(result.message(), "info")
        return redirect(url_for(".index", practice_id=practice.id))


class MappingsView(_PracticeView):
    """One practice's Cliniko → Xero mappings, one form per kind; with several Xero organisations, the
    practice-wide mappings or one organisation's own (`?organisation=<connection id>`)."""

    @expose("/")
    def index(self, practice_id: int):
        practice = self._practice(practice_id)
        organisation = _organisation(practice, request.args.get("organisation"))
        return self._page(practice, organisation)

    def _tables(self, practice, organisation, picks, settings, posted_kind=None, posted_form=None):
        tables = []
        own = organisation.id if organisation is not None else None
        for kind, fields in MAPPING_FIELDS.items():
            rows = catalogue(practice.id, kind)
            current = mappings_of(practice.id, kind, own)
            inherited = mappings_of(practice.id, kind) if organisation is not None else {}
            form = posted_form if kind == posted_kind else mapping_form(fields, rows, current, picks)
            defaults = {f: default_text(kind, f, settings, picks) for f in fields}
            tables.append({
                "kind": kind, "title": KIND_LABELS[kind][0], "fields": fields, "rows": rows, "form": form,
                "current": current, "defaults": defaults,
                # Per row, what a blank choice means in this organisation: the practice-wide mapping, if any.
                "row_defaults": {cid: {f: default_text(kind, f, settings, picks, inherited=getattr(m, f)) or
                                       defaults[f] for f in fields if getattr(m, f)}
                                 for cid, m in inherited.items()},
                "labels": {f: FIELD_LABELS[f] for f in fields},
            })
        return tables

    def _page(self, practice, organisation=None, posted_kind=None, posted_form=None, status=200):
        from webapp.sync.context import settings_for
        from webapp.sync.routing import connections, default_connection

        orgs = connections(practice.id)
        default = default_connection(practice.id)
        picks = pickers(organisation or _connection(practice))
        try:
            settings = settings_for(practice, organisation) if organisation is not None else effective(practice)
        except SettingsError:
            settings = PracticeSettings()
        tables = self._tables(practice, organisation, picks, settings, posted_kind, posted_form)
        return self.render("admin/mappings/practice.html", practice=practice, tables=tables, picks=picks,
                           settings=settings, field_name=field_name, refresh_form=RefreshForm(formdata=None),
                           organisations=orgs if len(orgs) > 1 else [], organisation=organisation,
                           default_organisation=default), status

    @expose("/<kind>", methods=["POST"])
    def save(self, practice_id: int, kind: str):
        practice = self._practice(practice_id, write=True)
        if kind not in MAPPING_FIELDS:
            abort(404)
        organisation = _organisation(practice, request.form.get("organisation"))
        picks = pickers(organisation or _connection(practice))
        rows = catalogue(practice.id, kind)
        fields = MAPPING_FIELDS[kind]
        current = mappings_of(practice.id, kind, organisation.id if organisation is not None else None)
        form = mapping_form(fields, rows, current, picks, formdata=request.form)
        if not form.validate():
            flash("Nothing was saved: correct the choices marked below.", "error")
            return self._page(practice, organisation, posted_kind=kind, posted_form=form, status=400)
        chosen = {r.cliniko_id: {f: getattr(form, field_name(f, r.cliniko_id)).data or None for f in fields}
                  for r in rows}
        result = save_mappings(practice, current_user, kind, chosen, {r.cliniko_id: r.name for r in rows},
                               connection=organisation)
        flash(result.message(kind), "info")
        return redirect(_mappings_url(practice, organisation) + f"#{kind}")

    @expose("/refresh/cliniko", methods=["POST"])
    def refresh_cliniko(self, practice_id: int):
        """Re-read the Cliniko catalogue (billable items, products, practitioners, businesses, taxes)."""
        from webapp.clients.errors import ClientError
        from webapp.practices import cliniko_client
        from webapp.sync.catalogue import refresh

        practice = self._practice(practice_id, write=True)
        if not RefreshForm().validate():
            abort(400, "The form expired; reload the page and try again.")
        try:
            counts = refresh(practice, cliniko_client(practice))
            record("cliniko.catalogue_refresh", user=current_user, object_type="practice", object_id=practice.id,
                   practice_id=practice.id, details=counts)
            db.session.commit()
        except ClientError as exc:
            db.session.rollback()
            flash(f"Could not read from Cliniko: {exc.message}", "error")
        else:
            flash("Read from Cliniko: " + ", ".join(
                f"{counts.get(k, 0)} {KIND_LABELS[k][0].lower()}" for k in MAPPING_FIELDS) + ".", "info")
        return redirect(url_for(".index", practice_id=practice_id))

    @expose("/refresh/xero", methods=["POST"])
    def refresh_xero(self, practice_id: int):
        """Re-read accounts, tax rates and tracking options from the active Xero connection."""
        from webapp.xero.connections import refresh_reference_data

        practice = self._practice(practice_id, write=True)
        if not RefreshForm().validate():
            abort(400, "The form expired; reload the page and try again.")
        organisation = _organisation(practice, request.form.get("organisation"))
        connection = organisation or _connection(practice)
        if connection is None:
            flash("Connect the practice to Xero first.", "error")
            return redirect(url_for(".index", practice_id=practice_id))
        if connection.status != "active":
            flash(f"{connection.tenant_name} needs reconnecting before its lists can be read.", "error")
            return redirect(_mappings_url(practice, organisation))
        try:
            counts = refresh_reference_data(connection)
            record("xero.lists_refresh", user=current_user, object_type="xero_connection", object_id=connection.id,
                   practice_id=practice.id, details=counts)
            db.session.commit()
        except Exception as exc:  # the same handling as the practice page's button
            db.session.rollback()
            flash(f"Could not read from Xero: {exc}", "error")
        else:
            flash(f"Read {counts['accounts']} accounts, {counts['tax_rates']} tax rates and "
                  f"{counts['tracking_options']} tracking options from Xero ({connection.tenant_name}).", "info")
        return redirect(_mappings_url(practice, organisation))


def _connection(practice):
    from webapp.practices import active_connection

    return active_connection(practice)


def _organisation(practice, value):
    """The organisation named by `?organisation=` / the form (one of the practice's, not disconnected);
    None for blank (the practice-wide mappings); 404 for anything else."""
    from webapp.models import XeroConnection

    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) >= 2**31:
        abort(404)
    connection = db.session.get(XeroConnection, int(value))
    if connection is None or connection.practice_id != practice.id or connection.status == "revoked":
        abort(404)
    return connection


def _mappings_url(practice, organisation) -> str:
    if organisation is None:
        return url_for("practice_mappings.index", practice_id=practice.id)
    return url_for("practice_mappings.index", practice_id=practice.id, organisation=organisation.id)


def register(admin) -> None:
    """Add the Settings menu item and the two per-practice screens."""
    admin.add_view(SettingsIndexView(name="Settings", endpoint="settings", url="/settings"))
    admin.add_view(PracticeSettingsView(name="Practice settings", endpoint="practice_settings",
                                        url="/practices/<int:practice_id>/settings"))
    admin.add_view(MappingsView(name="Mappings", endpoint="practice_mappings",
                                url="/practices/<int:practice_id>/mappings"))
