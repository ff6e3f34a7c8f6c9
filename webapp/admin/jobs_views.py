"""Screens 4 and 5 (SPEC §8): the job list ("Synchronised invoices") and one job's detail.

A Flask-Admin BaseView with its own templates rather than a ModelView: ModelView pages with
OFFSET/LIMIT and counts every row for its pager, which is slow at a million rows; this list pages by
keyset on (updated_at desc, id desc) using the ix_sync_jobs_list / ix_sync_jobs_practice_list
indexes. Bulk actions only enqueue `jobs.bulk.*` with the user's id and plain JSON; the jobs
re-check scope and role.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from types import SimpleNamespace

from flask import Response, abort, flash, redirect, request, stream_with_context, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import func, select

from jobs.queues import enqueue
from webapp.access import practice_in_scope
from webapp.admin.access import SecuredView
from webapp.admin.dashboard import practices_in_scope
from webapp.admin.job_forms import (
    DATE_FIELDS,
    SEARCH_FIELDS,
    UNROUTED,
    JobFilter,
    decode_cursor,
    encode_cursor,
    filtered_query,
    page_keys,
)
from webapp.audit import record
from webapp.extensions import db
from webapp.models import (
    ERROR_CATEGORIES,
    INVOICE_KINDS,
    JOB_KINDS,
    JOB_STATUSES,
    SyncAttempt,
    SyncJob,
    XeroConnection,
)
from webapp.sync import requeue as requeue_mod

PER_PAGE_CHOICES = (25, 50, 100, 200)
COUNT_CAP = 10_000  # tab counts are exact up to here, then shown as "10,000+"
EXPORT_CHUNK = 1000
MAX_SELECTED = 5000
BULK_QUEUE = "live"
CSV_COLUMNS = ("id", "practice", "kind", "cliniko_id", "invoice_number", "patient_name", "amount", "status",
               "error_category", "failure_reason", "status_reason", "xero_id", "attempts", "issue_date",
               "updated_at", "synced_at", "organisation")
#: How the screens name a kind (others: the kind with spaces).
KIND_LABELS = {"appointment": "appointment invoice", "payment_delete": "payment delete"}
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP: prefix with a quote)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_DANGEROUS) else text


def _cliniko_host(practice) -> str:
    settings = practice.settings or {}
    return settings.get("cliniko_subdomain") or practice.cliniko_shard or "app"


def kind_label(kind: str) -> str:
    """The kind in words ("appointment invoice": a Xero invoice made from a Cliniko appointment)."""
    return KIND_LABELS.get(kind, kind.replace("_", " "))


def links_for(row: SyncJob) -> dict[str, str]:
    """Best-effort links to the record in Cliniko and in Xero."""
    host = f"https://{_cliniko_host(row.practice)}.cliniko.com"
    links: dict[str, str] = {}
    source = row.source or {}
    if row.kind == "contact":
        links["cliniko"] = f"{host}/patients/{row.cliniko_id}"
        if row.xero_id:
            links["xero"] = f"https://go.xero.com/Contacts/View/{row.xero_id}"
        return links
    if row.kind == "appointment":
        # A Xero invoice made from a completed appointment: Cliniko has the appointment, not an invoice.
        links["cliniko"] = f"{host}/appointments/{row.cliniko_id}"
        if row.xero_id:
            links["xero"] = f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={row.xero_id}"
        return links
    invoice = source.get("invoice") if isinstance(source.get("invoice"), dict) else {}
    invoice_id = invoice.get("id") or (row.cliniko_id if row.kind in ("invoice", "payment", "void") else None)
    if invoice_id:
        links["cliniko"] = f"{host}/invoices/{invoice_id}"
    xero_invoice = row.xero_id if row.kind == "invoice" else None
    if xero_invoice is None and invoice_id:
        xero_invoice = db.session.scalar(select(SyncJob.xero_id).where(
            SyncJob.practice_id == row.practice_id, SyncJob.kind.in_(INVOICE_KINDS),
            SyncJob.cliniko_id == str(invoice_id), SyncJob.xero_id.is_not(None)).limit(1))
    if xero_invoice:
        links["xero"] = f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={xero_invoice}"
    return links


def organisations(practices) -> dict[int, XeroConnection]:
    """{connection id: connection} of every Xero organisation the practices in scope were ever connected to."""
    ids = [p.id for p in practices]
    if not ids:
        return {}
    return {c.id: c for c in db.session.scalars(select(XeroConnection).where(
        XeroConnection.practice_id.in_(ids)).order_by(XeroConnection.practice_id, XeroConnection.id))}


def organisation_label(connection: XeroConnection | None) -> str:
    if connection is None:
        return ""
    return connection.tenant_name + (" (disconnected)" if connection.status == "revoked" else "")


def organisation_choices(filters: JobFilter, practices, orgs: dict[int, XeroConnection]) -> list[tuple[str, str]]:
    """The Organisation filter's options: the chosen practice's organisations (else those of every practice in
    scope with several), then "not routed yet"; empty when no practice in view has more than one."""
    names = {p.id: p.name for p in practices}
    by_practice: dict[int, list[XeroConnection]] = {}
    for c in orgs.values():
        by_practice.setdefault(c.practice_id, []).append(c)
    shown = {filters.practice: by_practice.get(filters.practice, [])} if filters.practice is not None else by_practice
    multi = {pid: conns for pid, conns in shown.items() if len(conns) > 1}
    if not multi and not filters.connection:
        return []
    prefix = len(multi) > 1 or (filters.practice is None and len(practices) > 1)
    choices = [(str(c.id), (f"{names.get(pid, pid)} · " if prefix else "") + organisation_label(c))
               for pid, conns in multi.items() for c in conns]
    chosen = orgs.get(int(filters.connection)) if filters.connection.isdigit() else None
    if chosen is not None and str(chosen.id) not in dict(choices):  # a practice with one organisation, by URL
        choices.append((str(chosen.id), organisation_label(chosen)))
    return choices + [(UNROUTED, "Not routed yet")]


def _check_connection(filters: JobFilter, orgs: dict[int, XeroConnection]) -> None:
    """An organisation filter naming a connection outside the user's scope is a 404 (as a practice is)."""
    if filters.connection and filters.connection != UNROUTED and int(filters.connection) not in orgs:
        abort(404)
    if filters.connection and filters.connection != UNROUTED and filters.practice is not None \
            and orgs[int(filters.connection)].practice_id != filters.practice:
        abort(404)


def state_counts(filters: JobFilter) -> dict[str, int]:
    """Rows per state under the filter (all but the state), each counted up to COUNT_CAP + 1."""
    columns = []
    for status in JOB_STATUSES:
        inner = filtered_query(filters, current_user, select(SyncJob.id), with_state=False).where(
            SyncJob.status == status).limit(COUNT_CAP + 1).subquery()
        columns.append(select(func.count()).select_from(inner).scalar_subquery().label(status))
    row = db.session.execute(select(*columns)).one()
    return dict(zip(JOB_STATUSES, row, strict=True))


def load_rows(ids: list[int]) -> list[SyncJob]:
    """The rows with these ids, in this order."""
    found = {r.id: r for r in db.session.scalars(select(SyncJob).where(SyncJob.id.in_(ids)))} if ids else {}
    return [found[i] for i in ids if i in found]


def _load_row(job_id: int) -> SyncJob:
    row = db.session.get(SyncJob, job_id)
    if row is None:
        abort(404)
    practice_in_scope(row.practice_id)
    return row


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


class JobsView(SecuredView, BaseView):
    """The job list with tabs, filters, search, keyset pages, bulk actions and CSV export."""

    @expose("/")
    def index(self):
        filters = JobFilter.from_dict(request.args)
        practices = practices_in_scope()
        orgs = organisations(practices)
        _check_connection(filters, orgs)
        org_choices = organisation_choices(filters, practices, orgs)
        per_page = request.args.get("per_page", type=int)
        per_page = per_page if per_page in PER_PAGE_CHOICES else 50
        after = decode_cursor(request.args.get("after"))
        before = None if after else decode_cursor(request.args.get("before"))
        keys = page_keys(filters, current_user, after=after, before=before, limit=per_page + 1)
        more = len(keys) > per_page
        keys = keys[1:] if before and more else keys[:per_page]
        rows = load_rows([row_id for _, row_id in keys])
        if before:
            has_prev, has_next = more, True
        else:
            has_prev, has_next = after is not None, more
        pages = {}
        if rows and has_next:
            pages["next"] = url_for(".index", **filters.to_dict(), per_page=per_page,
                                    after=encode_cursor(rows[-1].updated_at, rows[-1].id))
        if rows and has_prev:
            pages["prev"] = url_for(".index", **filters.to_dict(), per_page=per_page,
                                    before=encode_cursor(rows[0].updated_at, rows[0].id))
        if after or before:
            pages["first"] = url_for(".index", **filters.to_dict(), per_page=per_page)
        counts = state_counts(filters)
        return self.render(
            "admin/jobs/list.html", rows=rows, filters=filters, filter_args=filters.to_dict(), counts=counts,
            count_cap=COUNT_CAP, statuses=JOB_STATUSES, kinds=JOB_KINDS, categories=ERROR_CATEGORIES,
            search_fields=SEARCH_FIELDS, date_fields=DATE_FIELDS, practices=practices,
            practice_names={p.id: p.name for p in practices}, pages=pages, per_page=per_page,
            per_page_choices=PER_PAGE_CHOICES, requeueable=requeue_mod.REQUEUEABLE, kind_label=kind_label,
            org_choices=org_choices, org_names={cid: organisation_label(c) for cid, c in orgs.items()},
            show_orgs=bool(org_choices),
        )

    @expose("/export.csv")
    def export(self):
        """The current filter as CSV, streamed in keyset chunks (formula cells neutralised)."""
        filters = JobFilter.from_dict(request.args)
        practices = practices_in_scope()
        slugs = {p.id: p.slug for p in practices}
        orgs = organisations(practices)
        _check_connection(filters, orgs)
        org_names = {cid: organisation_label(c) for cid, c in orgs.items()}
        record("jobs.export", user=current_user, object_type="sync_job", practice_id=filters.practice,
               details={"filters": filters.to_dict()})
        # The scope as plain data: the generator runs after the view returns.
        user = SimpleNamespace(practice_id=current_user.practice_id)
        db.session.commit()
        columns = (SyncJob.id, SyncJob.practice_id, SyncJob.kind, SyncJob.cliniko_id, SyncJob.invoice_number,
                   SyncJob.patient_name, SyncJob.amount, SyncJob.status, SyncJob.error_category,
                   SyncJob.failure_reason, SyncJob.status_reason, SyncJob.xero_id, SyncJob.attempts,
                   SyncJob.issue_date, SyncJob.updated_at, SyncJob.synced_at, SyncJob.connection_id)

        def generate():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            after = None
            while True:
                keys = page_keys(filters, user, after=after, limit=EXPORT_CHUNK)
                order = {row_id: i for i, (_, row_id) in enumerate(keys)}
                chunk = sorted(db.session.execute(select(*columns).where(SyncJob.id.in_(list(order)))).all(),
                               key=lambda r: order[r.id])
                for r in chunk:
                    values = list(r)
                    values[1] = slugs.get(r.practice_id, r.practice_id)
                    values[-1] = org_names.get(r.connection_id, "")
                    writer.writerow([v if i == 6 and v is not None else csv_safe(v) for i, v in enumerate(values)])
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(keys) < EXPORT_CHUNK:
                    return
                after = keys[-1]

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Response(stream_with_context(generate()), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="sync-jobs-{stamp}.csv"',
                                 "Cache-Control": "no-store"})

    def _back(self):
        return redirect(url_for(".index", **JobFilter.from_dict(request.form).to_dict()))

    @expose("/bulk", methods=["POST"])
    def bulk(self):
        """Re-queue or ignore the selected rows (admins): checks scope, then enqueues jobs.bulk.*."""
        _require_admin()
        action = request.form.get("action")
        if action not in ("requeue", "ignore"):
            abort(400)
        raw = request.form.getlist("ids")
        if not raw:
            flash("Select at least one row first.", "error")
            return self._back()
        if any(not value.isdigit() for value in raw) or len(raw) > MAX_SELECTED:
            abort(400)
        ids = sorted({int(value) for value in raw})
        found = dict(db.session.execute(select(SyncJob.id, SyncJob.practice_id).where(SyncJob.id.in_(ids))).all())
        if len(found) != len(ids) or not all(current_user.can_see_practice(p) for p in found.values()):
            abort(404)
        if action == "ignore":
            reason = (request.form.get("reason") or "").strip()
            if not reason:
                flash("Give a reason to ignore rows.", "error")
                return self._back()
            job = enqueue("jobs.bulk.ignore_selected", current_user.id, json.dumps(ids), reason[:500],
                          queue_name=BULK_QUEUE)
            flash(f"Ignoring {len(ids)} selected row(s) is queued (background job {job.id}). "
                  "Refresh in a moment to see it.", "info")
        else:
            job = enqueue("jobs.bulk.requeue_selected", current_user.id, json.dumps(ids), queue_name=BULK_QUEUE)
            flash(f"Re-queue of {len(ids)} selected row(s) is queued (background job {job.id}). "
                  "Refresh in a moment to see it.", "info")
        return self._back()

    @expose("/requeue-all", methods=["GET", "POST"])
    def requeue_all(self):
        """Re-queue every failed/ignored row matching the filter (admins): a confirmation page first."""
        _require_admin()
        source = request.form if request.method == "POST" else request.args
        filters = JobFilter.from_dict(source)
        if filters.practice is not None:
            practice_in_scope(filters.practice)
        practices = practices_in_scope()
        orgs = organisations(practices)
        _check_connection(filters, orgs)
        if request.method == "POST":
            job = enqueue("jobs.bulk.requeue_matching", current_user.id, json.dumps(filters.to_dict()),
                          queue_name=BULK_QUEUE)
            flash(f"Re-queue of every failed or ignored row matching the filter is queued (background job "
                  f"{job.id}). Refresh in a moment to see it.", "info")
            return redirect(url_for(".index", **filters.to_dict()))
        count = db.session.scalar(select(func.count()).select_from(
            filtered_query(filters, current_user, select(SyncJob.id))
            .where(SyncJob.status.in_(requeue_mod.REQUEUEABLE)).subquery()))
        return self.render("admin/jobs/confirm_requeue.html", filters=filters, filter_args=filters.to_dict(),
                           count=count, practice_names={p.id: p.name for p in practices},
                           organisation=("Not routed yet" if filters.connection == UNROUTED else
                                         organisation_label(orgs.get(int(filters.connection)))
                                         if filters.connection else None))

    @expose("/<int:job_id>/")
    def detail(self, job_id: int):
        from webapp.sync.preview import explain_invoice

        row = _load_row(job_id)
        attempts = db.session.scalars(select(SyncAttempt).where(SyncAttempt.job_id == row.id)
                                      .order_by(SyncAttempt.started_at, SyncAttempt.id)).all()
        sent = next((a for a in reversed(attempts) if a.request_body), None)
        several_orgs = db.session.scalar(select(func.count()).select_from(XeroConnection).where(
            XeroConnection.practice_id == row.practice_id)) > 1
        preview = explain_invoice(row) if (sent is None or row.status != "synced") else None
        return self.render("admin/jobs/detail.html", row=row, attempts=attempts, sent=sent, preview=preview,
                           links=links_for(row), kind_label=kind_label(row.kind), several_orgs=several_orgs,
                           requeueable=row.status in requeue_mod.REQUEUEABLE,
                           ignorable=row.status in ("failed", "pending", "retrying", "waiting"),
                           detail=row.error_detail or {}, pretty=lambda v: json.dumps(v, indent=2, sort_keys=True,
                                                                                       default=str))

    @expose("/<int:job_id>/requeue", methods=["POST"])
    def requeue_one(self, job_id: int):
        """Re-queue this row now (admins and support)."""
        row = _load_row(job_id)
        count = requeue_mod.requeue(requeue_mod.matching([row.practice_id], ids=[row.id]), current_user,
                                    reason="requeue")
        if count:
            flash("Re-queued: it will be sent again shortly.", "info")
        else:
            flash(f"Nothing to re-queue: the row is {row.status}.", "error")
        return redirect(url_for(".detail", job_id=job_id))

    @expose("/<int:job_id>/ignore", methods=["POST"])
    def ignore_one(self, job_id: int):
        """Ignore this row with a reason (admins)."""
        row = _load_row(job_id)
        _require_admin()
        reason = (request.form.get("reason") or "").strip()
        if not reason:
            flash("Give a reason to ignore this row.", "error")
            return redirect(url_for(".detail", job_id=job_id))
        count = requeue_mod.ignore(requeue_mod.matching([row.practice_id], ids=[row.id]), current_user, reason[:500])
        flash("Ignored." if count else f"Nothing to ignore: the row is {row.status}.", "info" if count else "error")
        return redirect(url_for(".detail", job_id=job_id))


def register(admin) -> None:
    """Add the job list (with its detail pages) to the admin."""
    admin.add_view(JobsView(name="Synchronised invoices", endpoint="jobs", url="/jobs"))
