"""Practices: the list in scope, and one practice's connections."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import func, select

from webapp import crypto
from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.admin.dashboard import practices_in_scope
from webapp.admin.practice_forms import ClinikoKeyForm, DefaultsForm, OrganisationDefaultsForm, PracticeCreateForm
from webapp.audit import record
from webapp.clients.cliniko import shard_from_api_key
from webapp.clients.errors import ClientError
from webapp.extensions import db
from webapp.models import Practice, XeroAccount, XeroConnection, XeroTaxRate, XeroTrackingOption  # noqa: I001
from webapp.practices import (
    PracticeError,
    active_connection,
    enable,
    organisation_default_problems,
    set_defaults,
    set_organisation_defaults,
    test_cliniko,
)


def reference_counts(connection_ids: list[int]) -> dict[int, dict[str, int]]:
    """{connection_id: {accounts, tax_rates, tracking_options}} in three grouped queries."""
    counts = {cid: {"accounts": 0, "tax_rates": 0, "tracking_options": 0} for cid in connection_ids}
    for name, model in (("accounts", XeroAccount), ("tax_rates", XeroTaxRate),
                        ("tracking_options", XeroTrackingOption)):
        rows = db.session.execute(
            select(model.connection_id, func.count()).where(model.connection_id.in_(connection_ids))
            .group_by(model.connection_id)
        )
        for cid, count in rows:
            counts[cid][name] = count
    return counts


class PracticesView(SecuredView, BaseView):
    """Practices in the user's scope with their Cliniko and Xero connection state."""

    @expose("/")
    def index(self):
        return self.render("admin/practices.html", practices=practices_in_scope())

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        """Create a practice (admins of all practices only)."""
        if not current_user.is_admin or current_user.practice_id is not None:
            abort(403)
        form = PracticeCreateForm()
        if form.validate_on_submit():
            key = form.cliniko_api_key.data.strip()
            try:
                shard = shard_from_api_key(key)
            except ClientError as exc:
                form.cliniko_api_key.errors.append(exc.message)
                return self.render("admin/practice_new.html", form=form), 400
            if db.session.scalar(select(Practice).where(Practice.slug == form.slug.data)):
                form.slug.errors.append("A practice with this slug already exists.")
                return self.render("admin/practice_new.html", form=form), 400
            practice = Practice(name=form.name.data.strip(), slug=form.slug.data, time_zone=form.time_zone.data,
                                cliniko_api_key_encrypted=crypto.encrypt(key), cliniko_shard=shard,
                                settings={}, poll_cursors={})
            db.session.add(practice)
            db.session.flush()
            record("practice.create", user=current_user, object_type="practice", object_id=practice.id,
                   practice_id=practice.id)
            db.session.commit()
            flash(f"Created {practice.name}. Test the Cliniko key, then connect Xero.", "info")
            return redirect(url_for(".detail", practice_id=practice.id))
        status = 400 if request.method == "POST" else 200
        return self.render("admin/practice_new.html", form=form), status

    @expose("/<int:practice_id>/")
    def detail(self, practice_id: int):
        practice = practice_in_scope(practice_id)
        return self._detail(practice)

    def _detail(self, practice, defaults_form=None, key_form=None, status=200, org_form=None):
        # Disconnected (revoked) connections are history, kept in the audit log, not shown here.
        connections = db.session.scalars(
            select(XeroConnection).where(XeroConnection.practice_id == practice.id,
                                         XeroConnection.status != "revoked").order_by(XeroConnection.id)
        ).all()
        counts = reference_counts([c.id for c in connections])
        defaults_form = defaults_form or self._defaults_form(practice)
        from webapp.sync.routing import routed_businesses

        default, routed = routed_businesses(practice.id, connections)
        # Several organisations: each may have its own default accounts (blank = the practice's).
        org_forms, org_problems = {}, {}
        if len(connections) > 1:
            for c in connections:
                posted = org_form[1] if org_form is not None and org_form[0] == c.id else None
                org_forms[c.id] = posted or self._organisation_form(practice, c)
                org_problems[c.id] = organisation_default_problems(practice, c)
        return self.render("admin/practice.html", practice=practice, connections=connections, counts=counts,
                           defaults_form=defaults_form, key_form=key_form or ClinikoKeyForm(formdata=None),
                           default_connection=default, routed=routed, org_forms=org_forms,
                           org_problems=org_problems), status

    def _organisation_form(self, practice, connection, formdata=None) -> OrganisationDefaultsForm:
        own = connection.settings or {}
        form = OrganisationDefaultsForm(formdata=formdata, data={k: own.get(k) or "" for k in
                                                                  ("sales_account", "payment_account",
                                                                   "rounding_account", "tax_exempt")})
        accounts = db.session.scalars(select(XeroAccount).where(XeroAccount.connection_id == connection.id)
                                      .order_by(XeroAccount.code)).all()
        rates = db.session.scalars(select(XeroTaxRate).where(XeroTaxRate.connection_id == connection.id)
                                   .order_by(XeroTaxRate.name)).all()
        form.fill_choices(accounts, rates, practice.settings or {}, own)
        return form

    def _defaults_form(self, practice, formdata=None):
        connection = active_connection(practice)
        if connection is None:
            return None
        settings = practice.settings or {}
        form = DefaultsForm(formdata=formdata, data={k: settings.get(k) or "" for k in
                                                     ("sales_account", "payment_account", "rounding_account",
                                                      "tax_exempt")})
        accounts = db.session.scalars(select(XeroAccount).where(XeroAccount.connection_id == connection.id)
                                      .order_by(XeroAccount.code)).all()
        rates = db.session.scalars(select(XeroTaxRate).where(XeroTaxRate.connection_id == connection.id)
                                   .order_by(XeroTaxRate.name)).all()
        form.fill_choices(accounts, rates)
        return form

    @expose("/<int:practice_id>/defaults", methods=["POST"])
    def defaults(self, practice_id: int):
        """Save the default accounts (admins): the practice's, or with `connection` one organisation's own."""
        practice = practice_in_scope(practice_id, admin=True)
        if request.form.get("connection"):
            return self._organisation_defaults(practice, request.form["connection"])
        form = self._defaults_form(practice, formdata=request.form)
        if form is None:
            abort(400, "Connect Xero first.")
        if not form.validate():
            return self._detail(practice, defaults_form=form, status=400)
        try:
            set_defaults(practice, current_user, sales_account=form.sales_account.data,
                         payment_account=form.payment_account.data,
                         rounding_account=form.rounding_account.data or None,
                         tax_exempt=form.tax_exempt.data or None)
        except PracticeError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return self._detail(practice, defaults_form=form, status=400)
        db.session.commit()
        flash("Default accounts saved.", "info")
        return redirect(url_for(".detail", practice_id=practice.id))

    def _organisation_defaults(self, practice, value: str):
        value = value.strip()
        connection = db.session.get(XeroConnection, int(value)) if value.isdigit() and int(value) < 2**31 else None
        if connection is None or connection.practice_id != practice.id or connection.status == "revoked":
            abort(404)
        form = self._organisation_form(practice, connection, formdata=request.form)
        if not form.validate():
            flash(f"Nothing was saved for {connection.tenant_name}: correct the choices marked below.", "error")
            return self._detail(practice, org_form=(connection.id, form), status=400)
        try:
            changed = set_organisation_defaults(
                practice, connection, current_user, sales_account=form.sales_account.data,
                payment_account=form.payment_account.data, rounding_account=form.rounding_account.data,
                tax_exempt=form.tax_exempt.data)
        except PracticeError as exc:
            db.session.rollback()
            flash(f"Nothing was saved for {connection.tenant_name}: {exc}", "error")
            return self._detail(practice, org_form=(connection.id, form), status=400)
        db.session.commit()
        if not changed:
            flash(f"No changes to {connection.tenant_name}'s default accounts.", "info")
            return redirect(url_for(".detail", practice_id=practice.id))
        from webapp.models import SyncJob
        from webapp.sync.requeue import requeue

        requeued = requeue(select(SyncJob).where(
            SyncJob.practice_id == practice.id, SyncJob.connection_id == connection.id,
            SyncJob.status == "failed", SyncJob.error_category.in_(("mapping", "totals"))),
            current_user, reason="requeue.auto")
        flash(f"Default accounts saved for {connection.tenant_name}. " + (
            f"{requeued} failed invoice{'s' if requeued != 1 else ''} re-queued." if requeued
            else "No failed invoices needed re-queueing."), "info")
        return redirect(url_for(".detail", practice_id=practice.id))

    @expose("/<int:practice_id>/cliniko/key", methods=["POST"])
    def cliniko_key(self, practice_id: int):
        """Replace the Cliniko API key (admins); stored encrypted, never shown again."""
        practice = practice_in_scope(practice_id, admin=True)
        form = ClinikoKeyForm()
        if not form.validate():
            return self._detail(practice, key_form=form, status=400)
        key = form.cliniko_api_key.data.strip()
        try:
            practice.cliniko_shard = shard_from_api_key(key)
        except ClientError as exc:
            form.cliniko_api_key.errors.append(exc.message)
            return self._detail(practice, key_form=form, status=400)
        practice.cliniko_api_key_encrypted = crypto.encrypt(key)
        record("practice.cliniko_key", user=current_user, object_type="practice", object_id=practice.id,
               practice_id=practice.id)
        db.session.commit()
        flash("Cliniko API key saved. Test it below.", "info")
        return redirect(url_for(".detail", practice_id=practice.id))

    @expose("/<int:practice_id>/sync", methods=["POST"])
    def sync_toggle(self, practice_id: int):
        """Turn sync on (checked) or pause it (admins)."""
        practice = practice_in_scope(practice_id, admin=True)
        if request.form.get("enabled") == "1":
            try:
                enable(practice, current_user)
            except PracticeError as exc:
                db.session.rollback()
                flash(str(exc), "error")
                return redirect(url_for(".detail", practice_id=practice.id))
            flash("Sync is on.", "info")
        else:
            practice.sync_enabled = False
            record("practice.pause", user=current_user, object_type="practice", object_id=practice.id,
                   practice_id=practice.id)
            flash("Sync is paused.", "info")
        db.session.commit()
        return redirect(url_for(".detail", practice_id=practice.id))

    @expose("/<int:practice_id>/cliniko/test", methods=["POST"])
    def cliniko_test(self, practice_id: int):
        """Read /settings and /businesses with the stored key and say what came back."""
        practice = practice_in_scope(practice_id)
        try:
            info = test_cliniko(practice)
        except ClientError as exc:
            flash(f"Cliniko did not answer as expected: {exc.message}", "error")
        else:
            # Load the Cliniko catalogue now, so the Mappings screen lists items straight away.
            from webapp.practices import cliniko_client
            from webapp.sync import catalogue

            try:
                counts = catalogue.refresh(practice, cliniko_client(practice))
                record("cliniko.catalogue_refresh", user=current_user, object_type="practice", object_id=practice.id,
                       practice_id=practice.id, details=counts)
                db.session.commit()
            except ClientError as exc:
                db.session.rollback()
                flash(f"Connected, but reading Cliniko's items and taxes failed: {exc.message}", "error")
            names = ", ".join(b.get("business_name") or b.get("name") or "?" for b in info.businesses) or "none"
            flash(f"Cliniko connected: account {info.account_name or '?'} ({info.country or '?'}, "
                  f"currency {info.currency or '?'}); businesses: {names}.", "info")
        return redirect(url_for(".detail", practice_id=practice.id))
