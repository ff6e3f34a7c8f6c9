"""Routing screen: which Xero organisation each Cliniko business's invoices go to (several organisations).

`/practices/<id>/routing/`: the practice's Cliniko businesses (from the catalogue), each with a choice of
the connected organisations; blank = the default organisation (the first active connection). Saving moves
the business's rows not yet in Xero to the new organisation and says how many moved; rows already in
Xero stay. Admins edit; support users read (POST → 403); another practice → 404.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm

from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.sync import routing


class RoutingForm(FlaskForm):
    """CSRF only: the choices are read from `route__<business id>` fields and checked against the practice."""


class RoutingView(SecuredView, BaseView):
    """One practice's business → organisation routing."""

    def is_visible(self) -> bool:
        return False

    @expose("/", methods=["GET", "POST"])
    def index(self, practice_id: int):
        if request.method == "POST":
            return self._save(practice_id)
        practice = practice_in_scope(practice_id)
        return self._page(practice, RoutingForm(formdata=None))

    def _page(self, practice, form, status=200, errors=None):
        connections = routing.connections(practice.id)
        return self.render("admin/routing/practice.html", practice=practice, form=form, tab="routing",
                           connections=connections, default=routing.default_connection(practice.id),
                           routes=routing.routes(practice.id), businesses=routing.businesses(practice.id),
                           errors=errors or {}), status

    def _save(self, practice_id: int):
        practice = practice_in_scope(practice_id, admin=True)
        form = RoutingForm()
        if not form.validate():
            flash("The form expired; reload the page and try again.", "error")
            return self._page(practice, form, status=400)
        allowed = {str(c.id): c for c in routing.connections(practice.id)}
        current = routing.routes(practice.id)
        wanted: dict[str, int | None] = {}
        errors = {}
        for business_id, _name, _archived in routing.businesses(practice.id):
            value = (request.form.get(f"route__{business_id}") or "").strip()
            if value and value not in allowed:
                errors[business_id] = "Choose one of the organisations connected to this practice."
                continue
            wanted[business_id] = int(value) if value else None
        if errors:
            flash("Nothing was saved: correct the choices marked below.", "error")
            return self._page(practice, form, status=400, errors=errors)
        changed, moved = 0, routing.Moved()
        for business_id, target in wanted.items():
            if current.get(business_id) == target:
                continue
            result = routing.set_route(practice, business_id, target, current_user)
            changed += 1
            moved.invoices += result.invoices
            moved.followups += result.followups
            moved.contacts += result.contacts
        if not changed:
            flash("Nothing changed.", "info")
        else:
            flash(f"Routing saved for {changed} business{'es' if changed != 1 else ''}. "
                  f"{moved.total} row{'s' if moved.total != 1 else ''} not yet in Xero moved "
                  f"({moved.invoices} invoices, {moved.followups} payments or voids, {moved.contacts} contacts); "
                  "rows already in Xero stay where they are.", "info")
        return redirect(url_for(".index", practice_id=practice.id))


def register(admin) -> None:
    """Add the per-practice Routing screen (reached from the practice page)."""
    admin.add_view(RoutingView(name="Routing", endpoint="practice_routing",
                               url="/practices/<int:practice_id>/routing"))
