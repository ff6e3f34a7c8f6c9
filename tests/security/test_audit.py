"""Every admin action is audited (SPEC §5 audit_log, §9, §13): every POST route of `app.url_map` is driven
with valid input, as a person would (forms read from the pages), against a practice wired to sandbox Cliniko
and sandbox Xero, and each must add an audit entry naming the admin and the action. A POST route that is
neither driven here nor listed with a reason fails the inventory test, so new actions are covered.

Background bulk actions (re-queue selected / all matching, ignore selected) are audited by the job that
does the work: the test runs the enqueued RQ job in-process and checks its entry.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from sandbox.xero.fixtures import SECOND_ORG_NAME
from tests.security.conftest import header_problems, inline_script_problems, signed_in, token_of
from tests.support.engine import PASSWORD, wire_clinic
from tests.support.xero import callback_path, consent_at_sandbox
from webapp.extensions import db
from webapp.models import AuditEntry, Backfill, Practice, SyncJob, User, XeroConnection

# POST routes deliberately not driven here, with the reason (none at present: every POST route is driven).
NOT_DRIVEN: dict[str, str] = {}


class FormReader(HTMLParser):
    """The fields a browser would submit for the form whose action contains `action` (first match)."""

    def __init__(self, action: str):
        super().__init__(convert_charrefs=True)
        self.action, self.inside, self.done = action, False, False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and not self.done and self.action in (a.get("action") or ""):
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind in ("submit", "button", "image", "file"):
                return
            self.fields.append((a["name"], a.get("value") or ("on" if kind == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self._select, self._options = a["name"], []
            self._multiple = "multiple" in a
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value") or "", "selected" in a))
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))

    def handle_data(self, data):
        if self._textarea is not None and self.fields and self.fields[-1][0] == self._textarea:
            self.fields[-1] = (self._textarea, self.fields[-1][1] + data)

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected]
            if not chosen and self._options and not self._multiple:
                chosen = [self._options[0][0]]
            self.fields += [(self._select, v) for v in chosen]
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self.inside, self.done = False, True


def read_form(html: str, action: str) -> dict[str, list[str]]:
    reader = FormReader(action)
    reader.feed(html)
    assert reader.done, f"no form posting to {action!r} on the page"
    out: dict[str, list[str]] = {}
    for name, value in reader.fields:
        out.setdefault(name, []).append(value)
    return out


def entries() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(AuditEntry))


def new_entries(since: int) -> list[AuditEntry]:
    db.session.expire_all()
    return db.session.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(since)).all()


def run_queued_jobs(redis_conn, queue_name: str = "live") -> int:
    """Run the bulk jobs the views enqueued, in this process (as the worker would)."""
    from jobs.queues import queue

    q = queue(queue_name, redis_conn)
    ran = 0
    for job in q.jobs:
        if job.func_name.startswith("jobs.bulk."):
            job.perform()
            q.remove(job)
            ran += 1
    return ran


def small_cliniko():
    from sandbox.cliniko.app import create_app

    return create_app(api_key="sandbox-key-au1", seed=3, patients=3, invoices=4)


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with wire_clinic(app, web, make_user, make_practice, small_cliniko(), xero_sandbox) as clinic:
        yield clinic


def failed_rows(practice_id: int, count: int) -> list[int]:
    rows = [SyncJob(practice_id=practice_id, kind="invoice", cliniko_id=f"audit-{i}", invoice_number=f"AUD-{i}",
                    patient_name=f"Audit Patient {i}", amount=Decimal("10.00"), status="failed",
                    error_category="mapping", failure_reason="test", attempts=1) for i in range(count)]
    db.session.add_all(rows)
    db.session.commit()
    return [r.id for r in rows]


def test_every_post_route_is_driven_or_explained(app):
    from tests.security.routes import app_rules

    posts = {r.endpoint for r in app_rules(app) if "POST" in r.methods}
    explained = set(DRIVEN) | set(NOT_DRIVEN)
    assert posts - explained == set(), f"POST routes with no audit check: {posts - explained}"
    assert explained - posts == set(), f"stale names: {explained - posts}"


# endpoint → the audit action(s) its driver must produce (filled in by the walk below)
DRIVEN = {
    "auth.login": {"login"}, "auth.logout": {"logout"},
    "practices.create": {"practice.create"}, "practices.cliniko_key": {"practice.cliniko_key"},
    "xero.choose": {"xero.connect"}, "practices.defaults": {"practice.defaults"},
    "practice_settings.index": {"practice.settings"}, "practice_mappings.save": {"mapping.save"},
    "practice_routing.index": {"routing.change"},
    "practices.sync_toggle": {"practice.pause", "practice.enable"},
    "backfill.start": {"backfill.start"}, "backfill.cancel": {"backfill.cancel"},
    "jobs.requeue_one": {"requeue"}, "jobs.ignore_one": {"ignore"},
    "jobs.bulk": {"requeue.bulk", "ignore"}, "jobs.requeue_all": {"requeue.bulk"},
    "users.create": {"user.invite"}, "users.edit": {"user.update"}, "users.disable": {"user.disable"},
    "users.enable": {"user.enable"}, "users.reinvite": {"user.invite_link"},
    "invites.accept": {"user.invite_accepted"}, "xero.disconnect_view": {"xero.disconnect"},
    # Re-reading Cliniko's and Xero's lists (and "test connection", which re-reads the catalogue on success).
    "practices.cliniko_test": {"cliniko.catalogue_refresh"},
    "practice_mappings.refresh_cliniko": {"cliniko.catalogue_refresh"},
    "practice_mappings.refresh_xero": {"xero.lists_refresh"}, "xero.refresh_reference": {"xero.lists_refresh"},
}


def test_every_admin_action_writes_an_audit_entry(app, web, clinic, redis_conn):
    practice = clinic.practice
    admin = db.session.scalars(select(User).where(User.email == "admin@example.com")).one()
    client = web.client
    seen: dict[str, set[str]] = {}

    def post(endpoint: str, path: str, data: dict, by=None):
        """POST as a browser would (with the page's CSRF token); the response and the entries it wrote."""
        before = entries()
        target = by or web
        form = dict(data)
        form.setdefault("csrf_token", token_of(target))
        response = target.client.post(path, data=form)
        assert response.status_code in (200, 302, 303), f"{endpoint}: {path} → {response.status_code}"
        # Pages rendered by a POST (the invitation link, form errors) follow the same rules as the rest.
        assert not header_problems(response), endpoint
        if response.mimetype == "text/html":
            assert not inline_script_problems(response.get_data(as_text=True)), endpoint
        return response, new_entries(before)

    def audited(endpoint: str, written: list[AuditEntry], user=admin):
        actions = {e.action for e in written}
        assert written, f"{endpoint} wrote no audit entry"
        if user is not None:
            assert all(e.user_id == user.id and e.actor == user.email for e in written), \
                f"{endpoint}: entries not attributed to {user.email}: {[(e.actor, e.action) for e in written]}"
        seen.setdefault(endpoint, set()).update(actions)

    # Practices: create a second one, replace its key, connect it to the second Xero organisation (choose).
    response, written = post("practices.create", "/practices/new",
                             {"name": "Second Clinic", "slug": "second", "cliniko_api_key": "second-key-au1",
                              "time_zone": "Australia/Sydney"})
    audited("practices.create", written)
    second = db.session.scalars(select(Practice).where(Practice.slug == "second")).one()
    _, written = post("practices.cliniko_key", f"/practices/{second.id}/cliniko/key",
                      {"cliniko_api_key": "second-key-2-au2"})
    audited("practices.cliniko_key", written)
    authorize = client.get(f"/practices/{second.id}/xero/connect").headers["Location"]
    choose_page = client.get(callback_path(consent_at_sandbox(authorize, SECOND_ORG_NAME)))
    assert choose_page.status_code == 200, "expected the organisation choice"
    assert not inline_script_problems(choose_page.get_data(as_text=True)) and not header_problems(choose_page)
    tenant = re.search(r'value="([0-9a-f-]{36})"[^>]*>\s*<label[^>]*>' + re.escape(SECOND_ORG_NAME),
                       choose_page.get_data(as_text=True)).group(1)
    _, written = post("xero.choose", "/xero/choose", {"tenant_id": tenant})
    audited("xero.choose", written)

    # Default accounts, settings and a mapping, from the forms on the pages.
    page = client.get(f"/practices/{practice.id}/").get_data(as_text=True)
    form = read_form(page, f"/practices/{practice.id}/defaults")
    form["rounding_account"] = ["860"]
    _, written = post("practices.defaults", f"/practices/{practice.id}/defaults", form)
    audited("practices.defaults", written)

    page = client.get(f"/practices/{practice.id}/settings/").get_data(as_text=True)
    form = read_form(page, f"/practices/{practice.id}/settings/")
    form["invoice_number_prefix"] = ["AUD-"]
    _, written = post("practice_settings.index", f"/practices/{practice.id}/settings/", form)
    audited("practice_settings.index", written)

    page = client.get(f"/practices/{practice.id}/mappings/").get_data(as_text=True)
    action = f"/practices/{practice.id}/mappings/billable_item"
    form = read_form(page, action)
    field = next(name for name in form if name.startswith("account_code__"))
    form[field] = ["200"]
    _, written = post("practice_mappings.save", action, form)
    audited("practice_mappings.save", written)

    page = client.get(f"/practices/{practice.id}/routing/").get_data(as_text=True)
    form = read_form(page, f"/practices/{practice.id}/routing/")
    field = next(name for name in form if name.startswith("route__"))
    own = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == practice.id)).first()
    form[field] = [str(own.id)]
    _, written = post("practice_routing.index", f"/practices/{practice.id}/routing/", form)
    audited("practice_routing.index", written)

    # Pause and resume.
    _, written = post("practices.sync_toggle", f"/practices/{practice.id}/sync", {"enabled": "0"})
    audited("practices.sync_toggle", written)
    _, written = post("practices.sync_toggle", f"/practices/{practice.id}/sync", {"enabled": "1"})
    audited("practices.sync_toggle", written)

    # Backfill: start, then cancel.
    since = (date.today() - timedelta(days=30)).isoformat()
    _, written = post("backfill.start", f"/backfill/{practice.id}/start", {"since": since})
    audited("backfill.start", written)
    backfill = db.session.scalars(select(Backfill).where(Backfill.practice_id == practice.id)
                                  .order_by(Backfill.id.desc())).first()
    _, written = post("backfill.cancel", f"/backfill/{practice.id}/{backfill.id}/cancel", {})
    audited("backfill.cancel", written)

    # Jobs: one row, selected rows, all matching (the bulk ones are audited by the job that runs).
    one, two, three, four = failed_rows(practice.id, 4)
    _, written = post("jobs.requeue_one", f"/jobs/{one}/requeue", {})
    audited("jobs.requeue_one", written)
    _, written = post("jobs.ignore_one", f"/jobs/{two}/ignore", {"reason": "duplicate in Cliniko"})
    audited("jobs.ignore_one", written)
    for form in ({"action": "requeue", "ids": [str(two)]}, {"action": "ignore", "ids": [str(three)],
                                                           "reason": "not ours"}):
        before = entries()
        post("jobs.bulk", "/jobs/bulk", form)
        assert run_queued_jobs(redis_conn) == 1
        audited("jobs.bulk", new_entries(before))
    before = entries()
    post("jobs.requeue_all", "/jobs/requeue-all", {"practice": str(practice.id), "state": "failed"})
    assert run_queued_jobs(redis_conn) == 1
    audited("jobs.requeue_all", new_entries(before))
    assert db.session.get(SyncJob, four).status == "pending"

    # Users: invite, change, disable, enable, a new link; the invited person accepts.
    _, written = post("users.create", "/users/new", {"email": "new.person@example.com", "role": "support",
                                                     "practice": str(practice.id)})
    audited("users.create", written)
    person = db.session.scalars(select(User).where(User.email == "new.person@example.com")).one()
    _, written = post("users.edit", f"/users/{person.id}/edit", {"role": "admin", "practice": str(practice.id)})
    audited("users.edit", written)
    _, written = post("users.disable", f"/users/{person.id}/disable", {})
    audited("users.disable", written)
    _, written = post("users.enable", f"/users/{person.id}/enable", {})
    audited("users.enable", written)
    response, written = post("users.reinvite", f"/users/{person.id}/invite", {})
    audited("users.reinvite", written)
    link = re.search(r"(/invite/[A-Za-z0-9_-]{20,})", response.get_data(as_text=True)).group(1)
    invited = signed_in(app, None)
    _, written = post("invites.accept", link, {"password": "a brand new password", "confirm": "a brand new password",
                                               "csrf_token": invited.csrf_token(link)}, by=invited)
    audited("invites.accept", written, user=db.session.get(User, person.id))

    # Re-reading the lists from Cliniko and Xero.
    connection = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == practice.id,
                                                                 XeroConnection.status == "active")).one()
    for endpoint, path in (
            ("practices.cliniko_test", f"/practices/{practice.id}/cliniko/test"),
            ("practice_mappings.refresh_cliniko", f"/practices/{practice.id}/mappings/refresh/cliniko"),
            ("practice_mappings.refresh_xero", f"/practices/{practice.id}/mappings/refresh/xero"),
            ("xero.refresh_reference", f"/practices/{practice.id}/xero/{connection.id}/refresh")):
        _, written = post(endpoint, path, {})
        audited(endpoint, written)

    # Disconnect the second practice's organisation.
    connection = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == second.id)).one()
    _, written = post("xero.disconnect_view", f"/practices/{second.id}/xero/{connection.id}/disconnect", {})
    audited("xero.disconnect_view", written)

    # Signing out and in.
    _, written = post("auth.logout", "/logout", {})
    audited("auth.logout", written)
    before = entries()
    assert web.login("admin@example.com", PASSWORD).status_code == 302
    audited("auth.login", new_entries(before))

    missing = {endpoint: sorted(actions - seen.get(endpoint, set())) for endpoint, actions in DRIVEN.items()
               if actions - seen.get(endpoint, set())}
    assert not missing, f"expected audit actions not written: {missing}"


def test_disconnecting_one_practice_leaves_other_practices_connected(app, web, clinic):
    from webapp.xero.connections import refresh_reference_data

    demo = clinic.practice
    token = token_of(web)
    web.client.post("/practices/new", data={"name": "Second Clinic", "slug": "second",
                                            "cliniko_api_key": "second-key-au1", "time_zone": "Australia/Sydney",
                                            "csrf_token": token})
    second = db.session.scalars(select(Practice).where(Practice.slug == "second")).one()
    authorize = web.client.get(f"/practices/{second.id}/xero/connect").headers["Location"]
    page = web.client.get(callback_path(consent_at_sandbox(authorize, SECOND_ORG_NAME))).get_data(as_text=True)
    tenant = re.search(r'value="([0-9a-f-]{36})"[^>]*>\s*<label[^>]*>' + re.escape(SECOND_ORG_NAME), page).group(1)
    assert web.client.post("/xero/choose", data={"tenant_id": tenant, "csrf_token": token_of(web)}).status_code == 302
    mine = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == second.id)).one()
    response = web.client.post(f"/practices/{second.id}/xero/{mine.id}/disconnect",
                               data={"csrf_token": token_of(web)})
    assert response.status_code == 302
    theirs = db.session.scalars(select(XeroConnection).where(XeroConnection.practice_id == demo.id)).one()
    assert theirs.status == "active"
    refresh_reference_data(theirs)  # raises ClientError (AuthenticationUnsuccessful) when the grant was revoked
