"""Reconciliation: Cliniko's invoices for an issue-date range against the Xero invoices this service
created (SPEC §7 "Preview and reconciliation", screen 7).

Per organisation when a practice has several: each Cliniko invoice is compared with the organisation its
row went to (a row already in Xero stays where it is), else with the one its business is routed to now
(webapp.sync.routing); each organisation's Xero invoices are read with that organisation's client. The
report has the totals of every organisation and one part per organisation.

Bounded and synchronous: Cliniko is read in pages of 100 (archived and deleted included) and the read
stops once more than `limit` invoices are found (the report then says the range is too large); Xero
is read in bulk by InvoiceID (rows we synced) and by InvoiceNumber (rows without a Xero id), 100 a
request through `client_for(connection)` with the shared rate budget. A range of a few hundred invoices
costs a handful of calls on each side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import or_, select

from webapp.clients.errors import ClientError
from webapp.extensions import db
from webapp.models import Practice, SyncJob

MAX_INVOICES = 500
CENT = Decimal("0.01")
PAID, CLOSED = 20, 30
CLINIKO_STATUS = {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}
GONE_IN_XERO = ("VOIDED", "DELETED")

# Difference codes and how the screen names them.
KINDS = {
    "not_discovered": "In Cliniko, no sync row",
    "not_in_xero": "Not in Xero",
    "voided_in_xero": "Voided or deleted in Xero, live in Cliniko",
    "total": "Totals differ",
    "not_paid_in_xero": "Paid in Cliniko, not paid in Xero",
    "paid_in_xero_only": "Paid in Xero, not paid in Cliniko",
    "payment_amount": "Payment amounts differ",
    "not_voided": "Deleted or archived in Cliniko, not voided in Xero",
    "not_in_cliniko": "In Xero, not in Cliniko's range",
}


class ReconciliationError(ValueError):
    """The report cannot run (no Xero connection, bad range); the message says why."""


@dataclass
class Difference:
    """One thing that differs between Cliniko and Xero for one invoice."""

    kind: str
    invoice_number: str | None
    cliniko_id: str | None
    message: str
    job_id: int | None = None
    organisation: str | None = None  # the Xero organisation compared with (several organisations)
    cliniko_status: str | None = None
    xero_status: str | None = None
    cliniko_amount: Decimal | None = None
    xero_amount: Decimal | None = None

    @property
    def label(self) -> str:
        return KINDS.get(self.kind, self.kind)


@dataclass
class Side:
    """Count and totals of one side (live invoices only)."""

    count: int = 0
    total: Decimal = Decimal("0.00")
    paid_count: int = 0
    paid: Decimal = Decimal("0.00")
    removed: int = 0  # deleted/archived in Cliniko; voided/deleted in Xero


@dataclass
class Part:
    """One Xero organisation's share of the report (its invoices, its Xero side, its differences)."""

    connection_id: int | None
    name: str
    cliniko: Side = field(default_factory=Side)
    xero: Side = field(default_factory=Side)
    excluded: int = 0
    pending: int = 0
    differences: int = 0
    error: str | None = None  # Xero could not be read: its invoices were not compared


@dataclass
class Report:
    """The outcome of one reconciliation run."""

    practice_id: int
    date_from: date
    date_to: date
    limit: int
    too_large: bool = False
    cliniko: Side = field(default_factory=Side)
    xero: Side = field(default_factory=Side)
    excluded: int = 0  # skipped by a filter or ignored on purpose
    pending: int = 0  # rows still on their way (pending, running, retrying, waiting)
    differences: list[Difference] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)  # one per organisation compared

    @property
    def clean(self) -> bool:
        return not self.too_large and not self.differences and not any(p.error for p in self.parts)

    @property
    def several(self) -> bool:
        return len(self.parts) > 1

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(d.kind for d in self.differences))


def money(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None


def _status(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_cliniko(client, date_from: date, date_to: date, limit: int) -> tuple[list[dict], bool]:
    """Invoices issued in the range (archived and deleted included); (invoices, too_large)."""
    params = [("q[]", f"issue_date:>={date_from.isoformat()}"), ("q[]", f"issue_date:<={date_to.isoformat()}"),
              ("q[]", "archived_at:*"), ("q[]", "deleted_at:*"), ("sort", "issue_date,id"), ("per_page", "100")]
    invoices: list[dict] = []
    for invoice in client.paginate("invoices", "invoices", params):
        invoices.append(invoice)
        if len(invoices) > limit:
            return invoices, True
    return invoices, False


def _rows(practice_id: int, cliniko_ids: list[str], date_from: date, date_to: date) -> list[SyncJob]:
    """This practice's non-contact rows for the Cliniko ids, plus invoice rows issued in the range."""
    in_range = (SyncJob.kind == "invoice") & (SyncJob.issue_date >= date_from) & (
        SyncJob.issue_date < date.fromordinal(date_to.toordinal() + 1))
    where = or_(SyncJob.cliniko_id.in_(cliniko_ids), in_range) if cliniko_ids else in_range
    return db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind != "contact", where)).all()


def read_xero(xero, ids: list[str], numbers: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Xero invoices by InvoiceID and by InvoiceNumber, in bulk (Xero omits lines from these lists)."""
    by_id: dict[str, dict] = {}
    by_number: dict[str, dict] = {}
    if ids:
        for inv in xero.invoices(ids=ids):
            by_id[str(inv.get("InvoiceID"))] = inv
    if numbers:
        for inv in xero.invoices(invoice_numbers=numbers):
            if inv.get("Type", "ACCREC") == "ACCREC":
                by_number[str(inv.get("InvoiceNumber"))] = inv
    for inv in by_id.values():
        by_number.setdefault(str(inv.get("InvoiceNumber")), inv)
    return by_id, by_number


def business_of(invoice: dict) -> str | None:
    """The Cliniko business of an invoice (`business_id`, else its link)."""
    if invoice.get("business_id"):
        return str(invoice["business_id"])
    link = ((invoice.get("business") or {}).get("links") or {}).get("self") if isinstance(
        invoice.get("business"), dict) else None
    return str(link).rstrip("/").rsplit("/", 1)[-1] if link else None


def reconcile(practice: Practice, date_from: date, date_to: date, *, cliniko=None, xero=None,
              limit: int = MAX_INVOICES) -> Report:
    """Compare Cliniko and Xero for invoices issued from `date_from` to `date_to` (inclusive), per Xero
    organisation. `xero`: a client for a practice with one organisation, or {connection id: client}."""
    from webapp.practices import cliniko_client, xero_budget
    from webapp.sync import routing
    from webapp.xero.connections import client_for

    if date_to < date_from:
        raise ReconciliationError("The end date is before the start date.")
    report = Report(practice_id=practice.id, date_from=date_from, date_to=date_to, limit=limit)
    connections = routing.connections(practice.id)
    default = routing.default_connection(practice.id)
    if default is None or not any(c.status == "active" for c in connections):
        raise ReconciliationError("The practice has no active Xero connection.")
    if xero is not None and not isinstance(xero, dict):
        xero = {default.id: xero}
    clients = dict(xero or {})
    cliniko = cliniko or cliniko_client(practice)

    invoices, report.too_large = read_cliniko(cliniko, date_from, date_to, limit)
    if report.too_large:
        return report
    cliniko_ids = [str(i["id"]) for i in invoices]
    rows = _rows(practice.id, cliniko_ids, date_from, date_to)
    invoice_rows = {r.cliniko_id: r for r in rows if r.kind == "invoice"}
    followups: dict[str, dict[str, SyncJob]] = {}
    for r in rows:
        if r.kind != "invoice":
            followups.setdefault(r.cliniko_id, {})[r.kind] = r

    prefix = str((practice.settings or {}).get("invoice_number_prefix") or "")
    routes = routing.routes(practice.id)

    def number_of(invoice: dict) -> str | None:
        row = invoice_rows.get(str(invoice["id"]))
        if row is not None and row.invoice_number:
            return row.invoice_number
        return f"{prefix}{invoice['number']}" if invoice.get("number") not in (None, "") else None

    def organisation_of(invoice: dict) -> int:
        """Where the row went (a row in Xero stays there), else where its business is routed now."""
        row = invoice_rows.get(str(invoice["id"]))
        if row is not None and row.connection_id is not None:
            return row.connection_id
        return routes.get(business_of(invoice) or "") or default.id

    names = {c.id: c.tenant_name for c in connections}
    mine: dict[int, list[dict]] = {}
    for invoice in invoices:
        mine.setdefault(organisation_of(invoice), []).append(invoice)
    leftovers: dict[int, list[SyncJob]] = {}
    seen = set(cliniko_ids)
    for cid, row in invoice_rows.items():
        if cid not in seen and row.xero_id:
            leftovers.setdefault(row.connection_id or default.id, []).append(row)
    order = [c.id for c in connections] + sorted((set(mine) | set(leftovers)) - set(names))

    for connection_id in order:
        if connection_id not in mine and connection_id not in leftovers and connection_id != default.id:
            continue
        part = Part(connection_id=connection_id, name=names.get(connection_id) or _name_of(connection_id))
        report.parts.append(part)
        group, extra_rows = mine.get(connection_id, []), leftovers.get(connection_id, [])
        if not group and not extra_rows:
            continue
        client = clients.get(connection_id)
        try:
            if client is None:
                connection = next((c for c in connections if c.id == connection_id and c.status == "active"), None)
                if connection is None:
                    raise ReconciliationError(f"{part.name} is not connected (or needs reconnecting): its "
                                              f"{len(group) + len(extra_rows)} invoices were not compared.")
                client = client_for(connection, budget=xero_budget())
            group_rows = [invoice_rows[str(i["id"])] for i in group if str(i["id"]) in invoice_rows]
            ids = sorted({r.xero_id for r in group_rows + extra_rows if r.xero_id})
            numbers = sorted({n for n in (number_of(i) for i in group) if n}
                             - {r.invoice_number for r in group_rows if r.xero_id and r.invoice_number})
            by_id, by_number = read_xero(client, ids, numbers)
        except ReconciliationError as exc:
            part.error = str(exc)
            continue
        except ClientError as exc:
            if len(connections) <= 1:
                raise  # one organisation: the screen says Xero could not be read
            part.error = f"Reading {part.name} failed: {exc.message}"
            continue
        sub = Report(practice_id=practice.id, date_from=date_from, date_to=date_to, limit=limit)
        for invoice in group:
            cid = str(invoice["id"])
            row = invoice_rows.get(cid)
            number = number_of(invoice)
            xi = (by_id.get(row.xero_id) if row is not None and row.xero_id else None) or by_number.get(number or "")
            _compare(sub, invoice, number, row, followups.get(cid, {}), xi)
        # Rows issued in the range that Cliniko no longer lists there, but that we put into this organisation.
        for row in extra_rows:
            xi = by_id.get(row.xero_id)  # read above with the others
            if xi is not None and xi.get("Status") not in GONE_IN_XERO:
                sub.differences.append(Difference(
                    kind="not_in_cliniko", invoice_number=row.invoice_number, cliniko_id=row.cliniko_id,
                    job_id=row.id, message="Synced to Xero, but Cliniko lists no invoice with this id issued in "
                    "the range.", xero_status=xi.get("Status"), cliniko_amount=money(row.amount),
                    xero_amount=money(xi.get("Total"))))
        part.cliniko, part.xero = sub.cliniko, sub.xero
        part.excluded, part.pending, part.differences = sub.excluded, sub.pending, len(sub.differences)
        _add(report, sub, part.name if len(connections) > 1 else None)
    return report


def _name_of(connection_id: int) -> str:
    from webapp.models import XeroConnection

    connection = db.session.get(XeroConnection, connection_id)
    return f"{connection.tenant_name} (disconnected)" if connection is not None else f"organisation {connection_id}"


def _add(report: Report, sub: Report, organisation: str | None) -> None:
    """Fold one organisation's figures and differences into the whole report."""
    for mine, theirs in ((report.cliniko, sub.cliniko), (report.xero, sub.xero)):
        mine.count += theirs.count
        mine.total += theirs.total
        mine.paid_count += theirs.paid_count
        mine.paid += theirs.paid
        mine.removed += theirs.removed
    report.excluded += sub.excluded
    report.pending += sub.pending
    for difference in sub.differences:
        difference.organisation = organisation
        report.differences.append(difference)


def _compare(report: Report, invoice: dict, number: str | None, row: SyncJob | None, extra: dict[str, SyncJob],
             xi: dict | None) -> None:
    """Add one Cliniko invoice to the report's totals and its differences with its Xero invoice `xi`."""
    cid = str(invoice["id"])
    status = _status(invoice.get("status"))
    total = money(invoice.get("total_amount")) or Decimal("0.00")
    removed = bool(invoice.get("deleted_at") or invoice.get("archived_at"))
    x_status = xi.get("Status") if xi else None
    x_total = money(xi.get("Total")) if xi else None
    x_paid = money(xi.get("AmountPaid")) if xi else None
    live_in_xero = xi is not None and x_status not in GONE_IN_XERO
    c_label = ("deleted" if invoice.get("deleted_at") else "archived" if invoice.get("archived_at")
               else CLINIKO_STATUS.get(status, str(invoice.get("status"))))

    def diff(kind: str, message: str, job: SyncJob | None = None, xero_amount: Decimal | None = None) -> None:
        job = job or row
        report.differences.append(Difference(
            kind=kind, invoice_number=number, cliniko_id=cid, message=message,
            job_id=job.id if job is not None else None, cliniko_status=c_label, xero_status=x_status,
            cliniko_amount=total, xero_amount=xero_amount if xero_amount is not None else x_total))

    if live_in_xero:
        report.xero.count += 1
        report.xero.total += x_total or 0
        if (x_paid or 0) > 0:
            report.xero.paid_count += 1
            report.xero.paid += x_paid
    elif xi is not None:
        report.xero.removed += 1

    if removed:
        report.cliniko.removed += 1
        if live_in_xero:
            diff("not_voided", f"{c_label.capitalize()} in Cliniko but {x_status} in Xero.", extra.get("void"))
        return

    report.cliniko.count += 1
    report.cliniko.total += total
    if status == PAID:
        report.cliniko.paid_count += 1
        report.cliniko.paid += total
    if row is not None and row.status in ("skipped", "ignored") and not live_in_xero:
        report.excluded += 1
        return
    if row is not None and row.status in ("pending", "running", "retrying", "waiting"):
        report.pending += 1
    if row is None and xi is None:
        diff("not_discovered", "Cliniko has this invoice but the service has no row for it "
             "(not polled yet, or issued before the sync-from date: run a backfill).")
        return
    if xi is None:
        reason = f": {row.failure_reason}" if row is not None and row.failure_reason else ""
        diff("not_in_xero", f"Not in Xero (row {row.status if row is not None else 'missing'}{reason}).")
        return
    if not live_in_xero:
        diff("voided_in_xero", f"{x_status} in Xero but {c_label} in Cliniko.")
        return
    if x_total is not None and x_total != total:
        diff("total", f"Cliniko ${total}, Xero ${x_total}.")
    if status == PAID and x_status != "PAID":
        diff("not_paid_in_xero", f"Paid in Cliniko; {x_status} in Xero with ${x_paid or 0} paid.",
             extra.get("payment"), xero_amount=x_paid)
    elif status == PAID and x_paid is not None and x_paid != total:
        diff("payment_amount", f"Cliniko paid ${total}, Xero shows ${x_paid} paid.",
             extra.get("payment"), xero_amount=x_paid)
    elif status not in (PAID, CLOSED) and (x_paid or 0) > 0:
        diff("paid_in_xero_only", f"{c_label} in Cliniko but Xero shows ${x_paid} paid ({x_status}).",
             extra.get("payment_delete") or extra.get("payment"), xero_amount=x_paid)
