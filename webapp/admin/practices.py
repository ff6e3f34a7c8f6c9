"""Practices: the list in scope, and one practice's connections."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_admin import BaseView, expose
from sqlalchemy import func, select

from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.admin.dashboard import practices_in_scope
from webapp.clients.errors import ClientError
from webapp.extensions import db
from webapp.models import XeroAccount, XeroConnection, XeroTaxRate, XeroTrackingOption
from webapp.practices import test_cliniko


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

    @expose("/<int:practice_id>/")
    def detail(self, practice_id: int):
        practice = practice_in_scope(practice_id)
        connections = db.session.scalars(
            select(XeroConnection).where(XeroConnection.practice_id == practice.id).order_by(XeroConnection.id)
        ).all()
        counts = reference_counts([c.id for c in connections])
        return self.render("admin/practice.html", practice=practice, connections=connections, counts=counts)

    @expose("/<int:practice_id>/cliniko/test", methods=["POST"])
    def cliniko_test(self, practice_id: int):
        """Read /settings and /businesses with the stored key and say what came back."""
        practice = practice_in_scope(practice_id)
        try:
            info = test_cliniko(practice)
        except ClientError as exc:
            flash(f"Cliniko did not answer as expected: {exc.message}", "error")
        else:
            names = ", ".join(b.get("business_name") or b.get("name") or "?" for b in info.businesses) or "none"
            flash(f"Cliniko connected: account {info.account_name or '?'} ({info.country or '?'}, "
                  f"currency {info.currency or '?'}); businesses: {names}.", "info")
        return redirect(url_for(".detail", practice_id=practice.id))
