"""Backfill (SPEC §8 screen 6) and Reconciliation (screen 7).

Backfill: `/backfill/` (practice picker) → `/backfill/<practice_id>/`: date picker and start (admins),
the current backfill's progress bar (counts, ETA) refreshed by `static/backfill.js` polling
`/backfill/<practice_id>/<backfill_id>/progress.json` (without JavaScript a `<noscript>` meta refresh
reloads the page), cancel (admins, POST + CSRF), and the past backfills.

Reconciliation: `/reconcile/?practice=<id>&date_from=…&date_to=…` runs
`webapp.sync.reconciliation.reconcile` synchronously (bounded: it says when the range is too large).
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from wtforms import DateField
from wtforms.validators import DataRequired

from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.admin.dashboard import human_duration, practices_in_scope
from webapp.clients.errors import ClientError
from webapp.extensions import db
from webapp.models import Backfill, SyncJob

PAST_BACKFILLS = 20
ACTIVE = ("queued", "running")


class BackfillForm(FlaskForm):
    """Synchronise from a previous date."""

    since = DateField("Invoices issued on or after", validators=[DataRequired(message="Choose a date.")])


def progress_data(backfill: Backfill) -> dict:
    """What the progress bar shows (the page and the JSON endpoint use the same numbers)."""
    from webapp.sync.backfill import progress

    p = progress(backfill)
    # Rows waiting on an invoice that failed (or was skipped) will not move until someone fixes it:
    # they count as blocked, not remaining, so that a finished backfill reaches 100 %.
    blocked = blocked_rows(backfill.id) if p.remaining else 0
    remaining = max(p.remaining - blocked, 0)
    finished = p.synced + p.failed + p.other + blocked
    rows = finished + remaining
    discovering = backfill.state in ACTIVE
    if discovering:
        percent = min(99, int(100 * finished / rows)) if rows else 0
    else:
        percent = 100 if remaining == 0 else min(99, int(100 * finished / rows)) if rows else 100
    complete = backfill.state == "done" and remaining == 0
    if backfill.state == "done":
        label = "Complete" if complete else "Discovery finished; sending to Xero"
    else:
        label = {"queued": "Queued", "running": "Discovering invoices in Cliniko", "cancelled": "Cancelled",
                 "failed": "Failed"}.get(backfill.state, backfill.state)
    return {
        "id": backfill.id, "state": backfill.state, "label": label, "from_date": backfill.from_date.isoformat(),
        "discovered": p.discovered, "synced": p.synced, "failed": p.failed, "remaining": remaining,
        "blocked": blocked, "other": p.other, "percent": percent, "complete": complete,
        "active": discovering or (backfill.state == "done" and remaining > 0),
        "eta_seconds": p.eta_seconds if remaining else 0.0,
        "eta": human_duration(p.eta_seconds) if remaining else "—",
        "error": backfill.error,
    }


def blocked_rows(backfill_id: int) -> int:
    """This backfill's waiting rows whose invoice failed, was skipped or ignored (unique index lookups)."""
    invoice = aliased(SyncJob)
    return db.session.scalar(
        select(func.count()).select_from(SyncJob).join(invoice, (invoice.practice_id == SyncJob.practice_id)
                                                       & (invoice.kind == "invoice")
                                                       & (invoice.cliniko_id == SyncJob.parent_cliniko_id))
        .where(SyncJob.backfill_id == backfill_id, SyncJob.status == "waiting",
               invoice.status.in_(("failed", "skipped", "ignored")))) or 0


def counts_for(backfill_ids: list[int]) -> dict[int, dict[str, int]]:
    """{backfill_id: {status: n}} in one grouped query (index ix_sync_jobs_backfill)."""
    out: dict[int, dict[str, int]] = {bid: {} for bid in backfill_ids}
    if backfill_ids:
        for bid, status, n in db.session.execute(
                select(SyncJob.backfill_id, SyncJob.status, func.count())
                .where(SyncJob.backfill_id.in_(backfill_ids)).group_by(SyncJob.backfill_id, SyncJob.status)):
            out[bid][status] = n
    return out


def _backfill(practice_id: int, backfill_id: int, admin: bool = False) -> Backfill:
    practice_in_scope(practice_id, admin=admin)
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None or backfill.practice_id != practice_id:
        abort(404)
    return backfill


class BackfillView(SecuredView, BaseView):
    """Synchronise from a previous date, with live progress."""

    @expose("/")
    def index(self):
        practices = practices_in_scope()
        if len(practices) == 1:
            return redirect(url_for(".practice_page", practice_id=practices[0].id))
        latest = {}
        if practices:
            for b in db.session.scalars(select(Backfill).where(
                    Backfill.practice_id.in_([p.id for p in practices])).order_by(Backfill.id.desc())):
                latest.setdefault(b.practice_id, b)
        return self.render("admin/backfill/index.html", practices=practices, latest=latest)

    @expose("/<int:practice_id>/")
    def practice_page(self, practice_id: int):
        practice = practice_in_scope(practice_id)
        return self._page(practice)

    def _page(self, practice, form=None, status=200):
        backfills = db.session.scalars(select(Backfill).where(Backfill.practice_id == practice.id)
                                       .order_by(Backfill.id.desc()).limit(PAST_BACKFILLS)).all()
        current = backfills[0] if backfills else None
        current_data = progress_data(current) if current is not None else None
        if form is None:
            form = BackfillForm(formdata=None, data={"since": date.today() - timedelta(days=90)})
        return self.render("admin/backfill/practice.html", practice=practice, form=form, backfills=backfills,
                           current=current, progress=current_data, counts=counts_for([b.id for b in backfills]),
                           running=current is not None and current.state in ACTIVE,
                           today=date.today().isoformat()), status

    @expose("/<int:practice_id>/start", methods=["POST"])
    def start(self, practice_id: int):
        """Start a backfill (admins)."""
        from webapp.sync.backfill import BackfillError, start

        practice = practice_in_scope(practice_id, admin=True)
        form = BackfillForm()
        if not form.validate():
            return self._page(practice, form=form, status=400)
        try:
            backfill = start(practice, form.since.data, current_user)
        except BackfillError as exc:
            db.session.rollback()
            form.since.errors.append(str(exc))
            return self._page(practice, form=form, status=400)
        flash(f"Backfill from {backfill.from_date} started.", "info")
        return redirect(url_for(".practice_page", practice_id=practice.id))

    @expose("/<int:practice_id>/<int:backfill_id>/cancel", methods=["POST"])
    def cancel(self, practice_id: int, backfill_id: int):
        """Cancel a queued or running backfill (admins); its unsent rows are skipped."""
        from webapp.sync.backfill import BackfillError, cancel

        backfill = _backfill(practice_id, backfill_id, admin=True)
        try:
            skipped = cancel(backfill, current_user)
        except BackfillError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for(".practice_page", practice_id=practice_id))
        db.session.commit()
        flash(f"Backfill cancelled; {skipped} rows not yet sent were skipped.", "info")
        return redirect(url_for(".practice_page", practice_id=practice_id))

    @expose("/<int:practice_id>/<int:backfill_id>/progress.json")
    def progress_json(self, practice_id: int, backfill_id: int):
        response = jsonify(progress_data(_backfill(practice_id, backfill_id)))
        response.headers["Cache-Control"] = "no-store"
        return response


def _date_arg(name: str) -> date | None:
    value = (request.args.get(name) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class ReconcileView(SecuredView, BaseView):
    """Cliniko against Xero for a range of issue dates: counts, totals, statuses, payments, differences."""

    @expose("/")
    def index(self):
        from webapp.sync.reconciliation import MAX_INVOICES, ReconciliationError, reconcile

        practices = practices_in_scope()
        today = date.today()
        date_from = _date_arg("date_from") or today - timedelta(days=30)
        date_to = _date_arg("date_to") or today
        practice_id = request.args.get("practice", type=int)
        if practice_id is None and len(practices) == 1:
            practice_id = practices[0].id
        practice = report = error = None
        status = 200
        if practice_id is not None:
            practice = practice_in_scope(practice_id)
        if practice is not None and request.args.get("run"):
            bad = [n for n in ("date_from", "date_to") if request.args.get(n) and _date_arg(n) is None]
            if bad:
                error, status = "Dates must look like 2026-01-31.", 400
            else:
                try:
                    report = reconcile(practice, date_from, date_to, limit=MAX_INVOICES)
                except ReconciliationError as exc:
                    error, status = str(exc), 400
                except ClientError as exc:
                    db.session.rollback()
                    error, status = f"Reading Cliniko or Xero failed: {exc.message}", 502
        return self.render("admin/reconcile/index.html", practices=practices, practice=practice,
                           date_from=date_from, date_to=date_to, report=report, error=error,
                           limit=MAX_INVOICES), status


def register(admin) -> None:
    """Add the Backfill and Reconciliation screens."""
    admin.add_view(BackfillView(name="Backfill", endpoint="backfill", url="/backfill"))
    admin.add_view(ReconcileView(name="Reconciliation", endpoint="reconcile", url="/reconcile"))
