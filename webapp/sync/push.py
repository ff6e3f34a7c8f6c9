"""Push: claim due rows of one practice's Xero organisation, send them in batches, exactly once (SPEC §7).

A practice may have several organisations (webapp.sync.routing); a Pusher works for one of them and
claims only its rows, with that organisation's mappings, lists and rate budget.
Order per tenant: contacts → invoices → appointment invoices → payments → payment removals → voids.
Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers can push the same practice.
Results are matched by natural key (ContactNumber, InvoiceNumber, payment Reference). After an unclear
outcome (timeout, dropped connection, crash) a row is flagged `reconcile` and looked up in Xero before
any re-send.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import TextClause, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import defer

from webapp.clients.errors import (
    AmbiguousError,
    AuthError,
    BudgetExhaustedError,
    CallRecord,
    ClientError,
    ValidationError,
)
from webapp.clients.xero import XeroClient
from webapp.extensions import db
from webapp.models import INVOICE_KINDS, Contact, Practice, SyncAttempt, SyncJob, XeroConnection, utcnow
from webapp.sync import plans, routing, states
from webapp.sync.changes import apply_followups, followup_rows, release_waiting_invoices
from webapp.sync.context import PracticeContext, load
from webapp.sync.mapping_contacts import disambiguated_name
from webapp.sync.snapshot import to_json
from webapp.sync.xero_errors import Explanation, explain_exception, explain_messages
from webapp.xero.tokens import ConnectionUnavailable

logger = logging.getLogger(__name__)

ORDER = ("contact", "invoice", "appointment", "payment", "payment_delete", "void")
DUE_STATES = ("pending", "retrying")
NAME_TAKEN = "is already assigned to another contact"
NUMBER_TAKEN = "Invoice # must be unique"
HELD_FOR_BATCH = "waiting for a full batch while the backfill reads Cliniko"
#: A claim asks for batch_size // SPARE_SHARE rows more than the batch lacks (see Pusher._batch).
SPARE_SHARE = 10


class Reschedule(Exception):
    """Stop this push: the tenant's budget says not before `at`."""

    def __init__(self, at: datetime, reason: str):
        super().__init__(reason)
        self.at = at
        self.reason = reason


class ConnectionGone(Exception):
    """The practice's Xero connection cannot be used now (needs reconnect)."""


@dataclass
class PushResult:
    """What one push call did."""

    batches: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    waiting: int = 0
    reschedule_at: datetime | None = None
    next_due_at: datetime | None = None
    stopped: str | None = None
    by_kind: dict[str, int] = field(default_factory=dict)
    held: int = 0  # rows given back to wait for a full batch (see Pusher.full_batches_only)


@dataclass
class Item:
    """A claimed row with the payload built for it."""

    row: SyncJob
    payload: dict | None = None
    key: str | None = None
    hash: str | None = None  # of the payload, when the row does not hold it yet (payments)
    invoice: dict | None = None  # the Cliniko invoice read from the row's snapshot (invoices)


class Pusher:
    """One push of one practice by one worker."""

    def __init__(self, ctx: PracticeContext, xero: XeroClient, worker: str, batch_size: int):
        self.ctx = ctx
        self.xero = xero
        self.worker = worker
        self.batch_size = batch_size
        self.result = PushResult()
        self.claimed: list[SyncJob] = []
        self._contacts_to_record: list[tuple[Item, str, str | None]] = []
        self._attempts: list[dict] = []  # written with the next commit, in one statement
        self._spare: dict[str, list[Item]] = {}  # prepared beyond a full batch, for the next batch of the kind
        self._in_flight: tuple | None = None  # (thread, items, record, box) of the Xero call under way
        #: While a backfill is still reading Cliniko, send full batches only: the rest of a kind waits for the
        #: next page instead of costing a call of its own (Xero's 60 calls a minute set a backfill's pace).
        self.full_batches_only = False
        #: Overlap each invoices/payments call with preparing the next batch (see _send_in_background).
        self.overlap = bool(current_app.config["XERO_OVERLAP_CALLS"])

    # -- transactions ---------------------------------------------------------------------------
    def commit(self) -> None:
        """Write the attempts recorded since the last commit (one INSERT), then commit."""
        attempts, self._attempts = self._attempts, []
        if attempts:
            db.session.execute(_insert_attempts(), {"rows": json.dumps(attempts)})
        db.session.commit()

    def rollback(self) -> None:
        self._attempts = []
        db.session.rollback()

    # -- claiming -------------------------------------------------------------------------------
    def claim(self, kind: str, limit: int | None = None) -> list[SyncJob]:
        """Take up to `limit` (a batch) due rows of this kind for this organisation (live first, then oldest)."""
        candidates = (
            select(SyncJob.id)
            .where(SyncJob.practice_id == self.ctx.practice_id, SyncJob.connection_id == self.ctx.connection.id,
                   SyncJob.kind == kind,
                   SyncJob.status.in_(DUE_STATES), SyncJob.next_attempt_at <= func.now())
            .order_by(SyncJob.priority, SyncJob.next_attempt_at, SyncJob.id)
            .limit(limit or self.batch_size)
            .with_for_update(skip_locked=True)
        )
        # One statement: lock the due rows nobody else holds, move them to running, return them.
        rows = states.claim_many(candidates, self.worker)
        self.commit()
        rows.sort(key=lambda r: (r.priority, r.next_attempt_at, r.id))
        self.claimed.extend(rows)
        return rows

    def release_claimed(self, reason: str, reconcile: bool = False, rows: list[SyncJob] | None = None) -> None:
        """Give back the rows still running and ours, not counted as an attempt: every claimed row (shutdown,
        budget, lost connection, time up) or only `rows` (held back for a full batch)."""
        rows = self.claimed if rows is None else rows
        if rows:
            # One query: the rows as the database has them now (the reaper may have taken one back meanwhile).
            with db.session.no_autoflush:
                db.session.scalars(select(SyncJob).where(SyncJob.id.in_([r.id for r in rows]))
                                   .execution_options(populate_existing=True)).all()
        for row in rows:
            if row.status == "running" and row.claimed_by == self.worker:
                states.release(row, reason)
                row.attempts = max(row.attempts - 1, 0)  # not a real attempt
                row.reconcile = row.reconcile or reconcile
        self.commit()
        if rows is self.claimed:
            self.claimed = []

    # -- recording ------------------------------------------------------------------------------
    def attempt(self, row: SyncJob, outcome: str, *, batch_id: str, started: float, call: CallRecord | None,
                body: dict | None, error: str | None = None, response: dict | None = None,
                key: str | None = None) -> None:
        """Record one attempt with the body sent (written with the next commit, see `commit`)."""
        now, elapsed = utcnow(), time.monotonic() - started
        self._attempts.append(dict(
            job_id=row.id, practice_id=row.practice_id, batch_id=batch_id,
            started_at=(now - timedelta(seconds=elapsed)).isoformat(),
            finished_at=now.isoformat(), outcome=outcome, http_status=call.status if call else None,
            error=error.replace("\x00", "") if error else error,
            duration_ms=int(call.duration_ms) if call and call.duration_ms else int(elapsed * 1000),
            request_body=to_json(body) if body is not None else None,  # JSON null → SQL NULL
            response_body=to_json(response) if response else None,
            xero_request_id=call.request_id if call else None, idempotency_key=key,
        ))

    def synced(self, row: SyncJob, xero_id: str | None, sent_hash: str | None = None) -> bool:
        return bool(self.synced_many([(row, xero_id, sent_hash)]))

    def synced_many(self, done: list[tuple]) -> list[SyncJob]:
        """Rows Xero accepted, (row, xero_id[, sent_hash[, payload_hash]]) each: synced in one statement."""
        rows = states.mark_synced_many(done)
        for row in rows:
            self.result.synced += 1
            self.result.by_kind[row.kind] = self.result.by_kind.get(row.kind, 0) + 1
        return rows

    def errored(self, row: SyncJob, explanation: Explanation, detail: dict | None = None) -> None:
        row.reconcile = row.reconcile or explanation.outcome_unknown
        detail = {**(detail or {}), "messages": explanation.messages}
        new = states.mark_error(row, explanation.category, explanation.reason, explanation.fix, detail,
                                retry_after=explanation.retry_after)
        if new == "failed":
            self.result.failed += 1
        else:
            self.result.retrying += 1

    def wait(self, row: SyncJob, reason: str) -> None:
        row.attempts = max(row.attempts - 1, 0)  # waiting is not an attempt
        states.wait(row, reason)
        self.result.waiting += 1

    def call_failed(self, items: list[Item], exc: ClientError, batch_id: str, started: float, key: str) -> None:
        """A whole batch call failed: budget → reschedule; ambiguous → reconcile; else per category."""
        if isinstance(exc, BudgetExhaustedError):
            at = utcnow() + timedelta(seconds=exc.retry_after or 1)
            self.release_claimed("waiting for the Xero rate budget")
            raise Reschedule(at, str(exc))
        explanation = explain_exception(exc)
        detail = {"http_status": exc.status, "request_id": exc.request_id, "detail": _short(exc.detail)}
        if isinstance(exc, ValidationError) and exc.elements:
            explanation = explain_messages([m for e in exc.elements for m in e.errors] or exc.messages)
        for item in items:
            self.attempt(item.row, "ambiguous" if exc.outcome_unknown else "error", batch_id=batch_id,
                         started=started, call=exc.call, body=item.payload, error=exc.message, key=key)
            self.errored(item.row, explanation, detail)
        self.commit()
        if isinstance(exc, AuthError):
            self._connection_refused(exc.message)
            raise ConnectionGone(exc.message)

    def _connection_refused(self, message: str) -> None:
        """Xero refused our token outright: stop using the connection until someone reconnects."""
        from webapp.models import AuditEntry, XeroConnection

        connection = db.session.get(XeroConnection, self.ctx.connection.id)
        if connection is not None and connection.status == "active":
            connection.status = "needs_reconnect"
            connection.last_error = f"Xero refused our access: {message}. Reconnect Xero for this practice."
            db.session.add(AuditEntry(actor="system", action="xero.needs_reconnect", object_type="xero_connection",
                                      object_id=str(connection.id), practice_id=connection.practice_id,
                                      details={"reason": connection.last_error}))
            self.commit()

    def looked_up(self, items: list[Item], lookup: Callable[[list[Item]], object]) -> bool:
        """Run a look-up in Xero for these items; if Xero cannot answer, they wait (still flagged)."""
        if not items:
            return True
        self._settle()  # one call to Xero at a time
        started = time.monotonic()
        try:
            lookup(items)
        except ClientError as exc:
            self.call_failed(items, exc, "lookup", started, None)
            return False
        return True

    # -- contacts -------------------------------------------------------------------------------
    def prepare_contacts(self, rows: list[SyncJob]) -> list[Item]:
        items = []
        for row in rows:
            built = plans.contact(self.ctx, row.source or {})
            items.append(Item(row, built.payload, built.payload.get("ContactNumber")))
        self._keep_names_apart(items)
        return items

    def _keep_names_apart(self, items: list[Item]) -> None:
        """Two patients with the same name get distinct Xero names up front (no failed call first)."""
        names = {i.payload.get("Name") for i in items if not i.row.xero_id}
        taken = {name: pid for name, pid in db.session.execute(
            select(Contact.name_used, Contact.cliniko_patient_id).where(
                Contact.practice_id == self.ctx.practice_id, Contact.connection_id == self.ctx.connection.id,
                Contact.name_used.in_(names)))} if names else {}
        for item in items:
            name = item.payload.get("Name")
            if item.row.xero_id or not name:
                continue
            if taken.get(name, item.row.cliniko_id) != item.row.cliniko_id:
                item.payload = dict(item.payload, Name=disambiguated_name(name, item.key))
            taken.setdefault(item.payload["Name"], item.row.cliniko_id)

    def _look_up_then_send(self, items: list[Item], adopt: Callable, send: Callable, collection: str) -> None:
        """Adopt what a previous unclear attempt may have created, then create new ones and update known ones."""
        self.looked_up([i for i in items if i.row.reconcile and not i.row.xero_id], adopt)
        pending = [i for i in items if i.row.status == "running"]
        for method, group in ((f"create_{collection}", [i for i in pending if not i.row.xero_id]),
                              (f"update_{collection}", [i for i in pending if i.row.xero_id])):
            if group:
                send(method, group)

    def send_contacts(self, items: list[Item]) -> None:
        self._look_up_then_send(items, self._adopt_contacts, self._send_contacts, "contacts")

    def _adopt_contacts(self, items: list[Item]) -> list[Item]:
        """Rows whose ContactNumber Xero already holds are adopted, never duplicated."""
        if not items:
            return []
        found = {c.get("ContactNumber"): c for c in self.xero.contacts(contact_numbers=[i.key for i in items])}
        adopted = self._contacts_synced([(item, found[item.key]["ContactID"], found[item.key].get("Name"))
                                         for item in items if found.get(item.key)])
        self._record_contacts()
        self.commit()
        return adopted

    def _send_contacts(self, method: str, items: list[Item], retry_names: bool = True) -> None:
        key, batch_id, started = str(uuid.uuid4()), str(uuid.uuid4()), time.monotonic()
        elements = [dict(i.payload, ContactID=i.row.xero_id) if i.row.xero_id else i.payload for i in items]
        try:
            result = getattr(self.xero, method)(elements, key)
        except ClientError as exc:
            self.call_failed(items, exc, batch_id, started, key)
            return
        self.result.batches += 1
        renamed, taken_numbers, accepted = [], [], []
        for item, element in zip(items, elements, strict=True):
            outcome = result.outcomes.get(item.key) or result.outcomes.get(item.row.xero_id or "")
            if outcome is None:
                self._unknown(item, batch_id, started, result.call, element, key)
                continue
            self.attempt(item.row, "synced" if outcome.ok else "error", batch_id=batch_id, started=started,
                         call=result.call, body=element, error="; ".join(outcome.errors) or None, key=key)
            if outcome.ok:
                accepted.append((item, outcome.xero_id, element.get("Name")))
            elif retry_names and any(NAME_TAKEN in e for e in outcome.errors):
                renamed.append(item)
            elif any("ContactNumber" in e and ("unique" in e or "already" in e) for e in outcome.errors):
                taken_numbers.append(item)
            else:
                self.errored(item.row, explain_messages(list(outcome.errors)), {
                    "http_status": result.call.status if result.call else None,
                    "request_id": result.call.request_id if result.call else None})
        self._contacts_synced(accepted)
        self._record_contacts()
        self.commit()
        if taken_numbers:
            adopted = self._adopt_contacts(taken_numbers)
            for item in taken_numbers:
                if item not in adopted and item.row.status == "running":
                    self.errored(item.row, explain_messages(["ContactNumber already in use in Xero"]))
            self.commit()
        if renamed:
            # Another contact holds this name: keep the patients apart instead of merging them.
            for item in renamed:
                item.payload = dict(item.payload, Name=disambiguated_name(item.payload["Name"], item.key))
            self._send_contacts(method, renamed, retry_names=False)

    def _contacts_synced(self, accepted: list[tuple[Item, str, str | None]]) -> list[Item]:
        """Contacts Xero holds now, (item, ContactID, name used) each: synced in one statement, recorded with
        the next `_record_contacts`. Returns the items synced."""
        written = {r.id for r in self.synced_many([(item.row, contact_id) for item, contact_id, _ in accepted])}
        done = [a for a in accepted if a[0].row.id in written]
        self._contacts_to_record.extend(done)
        return [item for item, _, _ in done]

    def _record_contacts(self) -> None:
        """Write the contacts synced since the last commit (one upsert) and release the invoices that
        waited for them (one query)."""
        done, self._contacts_to_record = self._contacts_to_record, []
        if not done:
            return
        values = {item.row.cliniko_id: {
            "practice_id": self.ctx.practice_id, "connection_id": self.ctx.connection.id,
            "cliniko_patient_id": item.row.cliniko_id,
            "xero_contact_id": contact_id, "contact_number": item.key, "name_used": name,
            "details_hash": item.row.payload_hash, "created_at": utcnow(), "updated_at": utcnow(),
        } for item, contact_id, name in done}
        stmt = insert(Contact).values(list(values.values()))
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=["practice_id", "connection_id", "cliniko_patient_id"],
            set_={k: stmt.excluded[k] for k in ("xero_contact_id", "contact_number", "name_used", "details_hash",
                                                 "updated_at")}))
        release_waiting_invoices(self.ctx.practice_id, list(values), self.ctx.connection.id)

    # -- invoices -------------------------------------------------------------------------------
    def prepare_invoices(self, rows: list[SyncJob]) -> list[Item]:
        contacts = self._contacts_for(rows)
        missing = [r.parent_cliniko_id for r in rows if r.parent_cliniko_id and r.parent_cliniko_id not in contacts]
        if missing:
            # The patient has no contact in this organisation yet (routed here, or moved): make it first.
            routing.ensure_contact_rows(self.ctx.practice_id, self.ctx.connection.id, missing)
        items = []
        for row in rows:
            contact = contacts.get(row.parent_cliniko_id)
            if row.parent_cliniko_id and (contact is None or contact.status != "synced" or not contact.xero_id):
                why = f": {contact.failure_reason}" if contact is not None and contact.failure_reason else ""
                self.wait(row, f"Waiting for the patient's contact to be in Xero{why}")
                continue
            built = plans.invoice_for_row(self.ctx, row, contact.xero_id if contact is not None else None)
            if built.error is not None:
                self.attempt(row, "error", batch_id="mapping", started=time.monotonic(), call=None, body=None,
                             error=built.error.reason)
                states.mark_failed(row, built.error.category, built.error.reason, built.error.fix)
                self.result.failed += 1
                continue
            if built.skip:
                states.skip(row, built.skip)
                continue
            payload = dict(built.payload)
            if row.xero_id:
                payload["InvoiceID"] = row.xero_id
            row.payload_hash = built.hash
            items.append(Item(row, payload, payload["InvoiceNumber"], invoice=built.invoice))
        self.commit()
        return items

    def send_invoices(self, items: list[Item]) -> None:
        self._look_up_then_send(items, self._adopt_invoices, self._send_invoices, "invoices")

    def _contacts_for(self, rows: list[SyncJob]) -> dict[str, SyncJob]:
        ids = {r.parent_cliniko_id for r in rows if r.parent_cliniko_id}
        if not ids:
            return {}
        found = db.session.scalars(select(SyncJob).where(
            SyncJob.practice_id == self.ctx.practice_id, SyncJob.kind == "contact",
            SyncJob.connection_id == self.ctx.connection.id, SyncJob.cliniko_id.in_(ids))
            .options(defer(SyncJob.source)))  # only state, Xero id and reason are read
        return {r.cliniko_id: r for r in found}

    def _adopt_invoices(self, items: list[Item]) -> None:
        """Look up by InvoiceNumber before re-sending after an unclear outcome; adopt what matches."""
        if not items:
            return
        found = {i.get("InvoiceNumber"): i for i in self.xero.invoices(invoice_numbers=[i.key for i in items])
                 if i.get("Type") == "ACCREC"}
        for item in items:
            existing = found.get(item.key)
            if existing is not None:
                self._adopt_or_conflict(item, existing)
        self.commit()

    def _adopt_or_conflict(self, item: Item, existing: dict) -> None:
        ours = item.payload.get("Contact", {}).get("ContactID")
        theirs = (existing.get("Contact") or {}).get("ContactID")
        total = _decimal(existing.get("Total"))
        expected = _decimal(item.row.amount)
        if existing.get("Status") in ("VOIDED", "DELETED"):
            self.errored(item.row, Explanation(
                "conflict", f"Invoice {item.key} exists in Xero but is {existing.get('Status').lower()}.",
                "Check the invoice in Xero; if it should be sent again, change the invoice number prefix or "
                "restore it in Xero, then re-queue."))
        elif ours == theirs and (expected is None or total == expected):
            if self.synced(item.row, existing.get("InvoiceID")):
                apply_followups(self.ctx, item.row)
        else:
            self.errored(item.row, Explanation(
                "conflict", f"Xero already has an invoice {item.key} that differs from Cliniko's "
                f"(Xero total {total}, contact {existing.get('Contact', {}).get('Name')}).",
                "Someone may have created it by hand. Rename or void the Xero invoice, or set an invoice "
                "number prefix in the practice settings, then re-queue."))

    def _send_invoices(self, method: str, items: list[Item]) -> None:
        key, batch_id, started = str(uuid.uuid4()), str(uuid.uuid4()), time.monotonic()
        payloads = [i.payload for i in items]
        self._send_in_background(items, lambda: getattr(self.xero, method)(payloads, key),
                                 lambda result, exc: self._sent_invoices(items, key, batch_id, started, result, exc))

    def _sent_invoices(self, items: list[Item], key: str, batch_id: str, started: float, result,
                       exc: ClientError | None) -> None:
        """Record Xero's answer to one invoices call (or the error it raised)."""
        if isinstance(exc, AmbiguousError):
            # Record the unclear outcome, then look now: what Xero committed is adopted; the rest
            # retries, flagged for a look-up before any re-send.
            for item in items:
                self.attempt(item.row, "ambiguous", batch_id=batch_id, started=started, call=exc.call,
                             body=item.payload, error=exc.message, key=key)
                item.row.reconcile = True
            self.commit()
            if self.looked_up(items, self._adopt_invoices):
                explanation = explain_exception(exc)
                for item in items:
                    if item.row.status == "running":
                        self.errored(item.row, explanation, {"request_id": exc.request_id})
                self.commit()
            return
        if exc is not None:
            self.call_failed(items, exc, batch_id, started, key)
            return
        self.result.batches += 1
        duplicates, accepted = [], []
        for item in items:
            outcome = result.outcomes.get(item.key) or result.outcomes.get(item.row.xero_id or "")
            if outcome is None:
                self._unknown(item, batch_id, started, result.call, item.payload, key)
                continue
            self.attempt(item.row, "synced" if outcome.ok else "error", batch_id=batch_id, started=started,
                         call=result.call, body=item.payload, error="; ".join(outcome.errors) or None, key=key)
            if outcome.ok:
                accepted.append((item.row, outcome.xero_id))
            elif not item.row.xero_id and any(NUMBER_TAKEN in e for e in outcome.errors):
                duplicates.append(item)
            else:
                self.errored(item.row, explain_messages(list(outcome.errors)), {
                    "http_status": result.call.status if result.call else None,
                    "request_id": result.call.request_id if result.call else None,
                    "validation_errors": list(outcome.errors)})
        synced = self.synced_many(accepted)
        siblings = followup_rows(self.ctx.practice_id, [r.cliniko_id for r in synced])
        parsed = {item.row.id: item.invoice for item in items}  # read from the snapshot when prepared
        for row in synced:
            apply_followups(self.ctx, row, siblings.get(row.cliniko_id, {}), parsed[row.id])
        self.commit()
        if duplicates:
            # "Invoice # must be unique." on a row we believe unsent: adopt it if it is ours.
            self._adopt_invoices(duplicates)
            for item in duplicates:
                if item.row.status == "running":
                    self.errored(item.row, explain_messages([f"{NUMBER_TAKEN}."]))
            self.commit()

    def _unknown(self, item: Item, batch_id: str, started: float, call, body, key) -> None:
        self.attempt(item.row, "ambiguous", batch_id=batch_id, started=started, call=call, body=body,
                     error="Xero's answer did not include this element", key=key)
        self.errored(item.row, Explanation("transient", "Xero's answer did not mention this record.",
                                           "Nothing to do: it is looked up in Xero before any re-send.",
                                           outcome_unknown=True))

    # -- payments -------------------------------------------------------------------------------
    def prepare_payments(self, rows: list[SyncJob]) -> list[Item]:
        invoices = self._invoice_rows(rows)
        items = []
        for row in rows:
            invoice = invoices.get(row.cliniko_id)
            if invoice is None or invoice.status != "synced" or not invoice.xero_id:
                self.wait(row, "Waiting for the invoice to be in Xero")
                continue
            built = plans.payment(self.ctx, row.source or {}, invoice.xero_id, row.amount)
            if built.error is not None:
                states.mark_failed(row, built.error.category, built.error.reason, built.error.fix)
                self.result.failed += 1
                continue
            items.append(Item(row, built.payload, built.payload["Reference"], built.hash))
        self.commit()
        return items

    def send_payments(self, items: list[Item]) -> None:
        def adopt(found: list[Item]) -> None:
            for item in found:
                existing = self._existing_payment(item)
                if existing is not None:
                    self.synced_many([(item.row, existing, item.hash, item.hash)])

        self.looked_up([i for i in items if i.row.reconcile], adopt)
        self.commit()
        pending = [i for i in items if i.row.status == "running"]
        if not pending:
            return
        key, batch_id, started = str(uuid.uuid4()), str(uuid.uuid4()), time.monotonic()
        payloads = [i.payload for i in pending]
        self._send_in_background(pending, lambda: self.xero.create_payments(payloads, key),
                                 lambda result, exc: self._sent_payments(pending, key, batch_id, started, result, exc))

    def _sent_payments(self, pending: list[Item], key: str, batch_id: str, started: float, result,
                       exc: ClientError | None) -> None:
        """Record Xero's answer to one payments call (or the error it raised)."""
        if exc is not None:
            self.call_failed(pending, exc, batch_id, started, key)
            return
        self.result.batches += 1
        accepted = []
        for item in pending:
            outcome = result.outcomes.get(item.key)
            if outcome is None:
                self._unknown(item, batch_id, started, result.call, item.payload, key)
                continue
            self.attempt(item.row, "synced" if outcome.ok else "error", batch_id=batch_id, started=started,
                         call=result.call, body=item.payload, error="; ".join(outcome.errors) or None, key=key)
            if outcome.ok:
                accepted.append((item.row, outcome.xero_id, item.hash, item.hash))
            else:
                self.errored(item.row, explain_messages(list(outcome.errors)), {
                    "http_status": result.call.status if result.call else None,
                    "validation_errors": list(outcome.errors)})
        self.synced_many(accepted)
        self.commit()

    def _invoice_rows(self, rows: list[SyncJob], with_source: bool = False) -> dict[str, SyncJob]:
        query = select(SyncJob).where(
            SyncJob.practice_id == self.ctx.practice_id, SyncJob.kind.in_(INVOICE_KINDS),
            SyncJob.cliniko_id.in_([r.cliniko_id for r in rows])).order_by(SyncJob.kind)
        # The Cliniko snapshot is the bulk of a row; payments need only the invoice's state and Xero id.
        found = db.session.scalars(query if with_source else query.options(defer(SyncJob.source)))
        # An `invoice` row wins over an `appointment` row with the same id (appointment first, then overwritten).
        return {r.cliniko_id: r for r in found}

    def _existing_payment(self, item: Item) -> str | None:
        """Our payment on the Xero invoice (by Reference, not deleted), if a previous attempt made it."""
        invoice_id = item.payload["Invoice"]["InvoiceID"]
        invoice = self.xero.invoice(invoice_id)
        for payment in invoice.get("Payments") or []:
            if payment.get("Reference") == item.key and payment.get("Status", "AUTHORISED") != "DELETED":
                return payment.get("PaymentID")
        return None

    # -- removals and voids ---------------------------------------------------------------------
    def push_singles(self, rows: list[SyncJob], kind: str) -> None:
        invoices = self._invoice_rows(rows, with_source=True)
        for row in rows:
            invoice = invoices.get(row.cliniko_id)
            key, batch_id, started = str(uuid.uuid4()), str(uuid.uuid4()), time.monotonic()
            if kind == "payment_delete":
                target = (row.source or {}).get("payment_id")
                body = {"Status": "DELETED", "PaymentID": target}
                call = lambda t=target, k=key: self.xero.delete_payment(t, k)  # noqa: E731
            else:
                if invoice is None or not invoice.xero_id:
                    states.skip(row, "The invoice was never in Xero; nothing to void")
                    continue
                status = "DELETED" if self.ctx.settings.invoice_status == "DRAFT" else "VOIDED"
                body = {"InvoiceID": invoice.xero_id, "Status": status}
                call = self._void_call(invoice, status, key)
            try:
                outcome = call()
            except ValidationError as exc:
                self.attempt(row, "error", batch_id=batch_id, started=started, call=exc.call, body=body,
                             error=exc.message, key=key)
                if kind == "payment_delete" and any("deleted" in m.lower() for m in exc.messages):
                    self.synced(row, target)  # already removed
                else:
                    self.errored(row, explain_exception(exc), {"http_status": exc.status})
                self.commit()
                continue
            except ClientError as exc:
                self.call_failed([Item(row, body)], exc, batch_id, started, key)
                continue
            self.result.batches += 1
            self.attempt(row, "synced" if outcome.ok else "error", batch_id=batch_id, started=started,
                         call=self.xero.last_call, body=body, error="; ".join(outcome.errors) or None, key=key)
            if outcome.ok:
                if self.synced(row, outcome.xero_id) and invoice is not None:
                    apply_followups(self.ctx, invoice)
            else:
                self.errored(row, explain_messages(list(outcome.errors)))
            self.commit()

    def _void_call(self, invoice: SyncJob, status: str, key: str) -> Callable:
        if status == "VOIDED":
            return lambda: self.xero.void_invoice(invoice.xero_id, key, invoice.invoice_number)

        def delete_draft():
            response = self.xero.request("POST", f"Invoices/{invoice.xero_id}",
                                         body={"Invoices": [{"InvoiceID": invoice.xero_id, "Status": "DELETED"}]},
                                         idempotency_key=key, collection="Invoices")
            return self.xero._single("Invoices", response)

        return delete_draft

    # -- one call in flight ----------------------------------------------------------------------
    def _send_in_background(self, items: list[Item], call: Callable, record: Callable) -> None:
        """Start a Xero call on a helper thread and return at once, so the next batch is claimed and prepared
        while Xero works on this one; `record(result, error)` runs later on this thread (`_settle`), where all
        database work stays. There is never more than one call in flight: the previous one is settled first.
        The call's rows stay claimed (in `self.claimed`) until then, so a shutdown meanwhile gives them back
        flagged for a look-up, like any call whose outcome is unknown."""
        self._settle()
        box: dict = {}

        def work() -> None:
            try:
                box["result"] = call()
            except BaseException as exc:  # handed to the pushing thread by _settle
                box["error"] = exc

        if self.overlap:
            app = current_app._get_current_object()

            def in_app() -> None:
                with app.app_context():  # the token look-up reads the connection on its own session
                    work()

            thread = threading.Thread(target=in_app, name="xero-call", daemon=True)
            thread.start()
        else:
            thread = None
            work()
        self._in_flight = (thread, items, record, box)
        if thread is None:
            self._settle()

    def _settle(self) -> None:
        """Wait for the call in flight, if any, and record its outcome."""
        if self._in_flight is None:
            return
        thread, _items, record, box = self._in_flight
        self._in_flight = None
        if thread is not None:
            thread.join()
        error = box.get("error")
        if error is not None and not isinstance(error, ClientError):
            raise error  # e.g. the connection became unusable (ConnectionUnavailable): handled by _run
        record(box.get("result"), error)

    def _held_rows(self) -> list[SyncJob]:
        """Rows still ours after a batch: those of the call in flight and those kept for the next batch."""
        flying = [item.row for item in self._in_flight[1]] if self._in_flight is not None else []
        return flying + [item.row for items in self._spare.values() for item in items]

    # -- the loop -------------------------------------------------------------------------------
    def _batch(self, kind: str, prepare: Callable, send: Callable) -> bool:
        """Claim until a full batch is ready to send (rows that wait, fail or skip don't count), send it.

        Each claim asks for a few more rows than the batch lacks; what is prepared beyond a full batch is
        kept, still claimed, for the next batch of this kind. A batch in which some rows fail mapping or wait
        is then topped up from those instead of by another claim for the few missing (about one claim a
        batch instead of two or three)."""
        items: list[Item] = self._spare.pop(kind, [])
        claimed = False
        while len(items) < self.batch_size:
            want = self.batch_size - len(items)
            ask = want + self.batch_size // SPARE_SHARE
            rows = self.claim(kind, ask)
            if not rows:
                break
            claimed = True
            items.extend(prepare(rows))
            if len(rows) < ask:
                break  # fewer were due than asked for: claiming again now would find nothing more
        if len(items) > self.batch_size:
            items, self._spare[kind] = items[:self.batch_size], items[self.batch_size:]
        if items and len(items) < self.batch_size and self.full_batches_only and all(
                item.row.priority > 0 for item in items):  # live rows (priority 0) never wait for a backfill
            self.release_claimed(HELD_FOR_BATCH, rows=[item.row for item in items])
            self.result.held += len(items)
            return False
        if items:
            send(items)
        return claimed

    def run(self, deadline: float) -> PushResult:
        # Claimed rows are ours until we release them: keep them loaded across commits instead of
        # re-reading each one after every commit.
        session = db.session()
        keep = session.expire_on_commit
        session.expire_on_commit = False
        try:
            return self._run(deadline)
        finally:
            session.expire_on_commit = keep

    def _run(self, deadline: float) -> PushResult:
        batched = {"contact": (self.prepare_contacts, self.send_contacts),
                   "invoice": (self.prepare_invoices, self.send_invoices),
                   "appointment": (self.prepare_invoices, self.send_invoices),
                   "payment": (self.prepare_payments, self.send_payments)}
        try:
            progressed = True
            while progressed and time.monotonic() < deadline:
                progressed = False
                # Follow-ups made by the last pass (a payment once its invoice is in) get their organisation.
                if routing.assign(self.ctx.practice_id):
                    self.commit()
                for kind in ORDER:
                    while time.monotonic() < deadline:
                        if kind in batched:
                            done = self._batch(kind, *batched[kind])
                        else:
                            rows = self.claim(kind)
                            done = bool(rows)
                            if rows:
                                self.push_singles(rows, kind)
                        self.commit()
                        self.claimed = self._held_rows()  # settled rows are done with; these are still ours
                        if not done:
                            break
                        progressed = True
                    self._settle()  # the next kind may depend on this one (payments on their invoices)
                    self.claimed = self._held_rows()
            self._settle()
            if any(self._spare.values()):  # the time is up with rows prepared for a next batch: back in the queue
                self._spare.clear()
                self.release_claimed("not sent before the push's time was up; back in the queue")
        except Reschedule as exc:
            self.result.reschedule_at = exc.at
            self.result.stopped = exc.reason
        except (ConnectionGone, ConnectionUnavailable) as exc:
            self.rollback()
            self.release_claimed("Xero connection unavailable")
            self.result.stopped = str(exc)
        except BaseException:
            # Shutdown (SIGTERM) or a bug: give the rows back; what was in flight is looked up first.
            self.rollback()
            self.release_claimed("interrupted", reconcile=True)
            raise
        return self.result


ATTEMPT_COLUMNS = ("job_id", "practice_id", "batch_id", "started_at", "finished_at", "outcome", "http_status", "error",
                   "duration_ms", "request_body", "response_body", "xero_request_id", "idempotency_key")
_insert_attempts_sql: TextClause | None = None


def _insert_attempts() -> TextClause:
    """All attempts of a commit in one INSERT from one JSON array parameter: one statement (the statement-level
    trigger on sync_attempts runs once), a constant text (parsed and planned once per connection)."""
    global _insert_attempts_sql
    if _insert_attempts_sql is None:
        table = SyncAttempt.__table__
        types = ", ".join(f"{c} {table.c[c].type.compile(dialect=postgresql.dialect())}" for c in ATTEMPT_COLUMNS)
        names = ", ".join(ATTEMPT_COLUMNS)
        _insert_attempts_sql = text(f"INSERT INTO sync_attempts ({names}) SELECT {names} "  # noqa: S608 (constants)
                                    f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types})")
    return _insert_attempts_sql


def _decimal(value):
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None else None
    except InvalidOperation:
        return None


def _short(detail, limit: int = 2000):
    if detail is None:
        return None
    text = str(detail)
    return text if len(text) <= limit else text[:limit] + "…"


def next_due(practice_id: int, connection_id: int | None = None) -> datetime | None:
    """When the practice's next row becomes due (None when nothing waits to be sent); with a connection, the
    next row of that organisation."""
    query = select(func.min(SyncJob.next_attempt_at)).where(
        SyncJob.practice_id == practice_id, SyncJob.status.in_(DUE_STATES))
    if connection_id is not None:
        query = query.where(SyncJob.connection_id == connection_id)
    return db.session.scalar(query)


def dry_run(practice: Practice) -> bool:
    """True when the practice is in dry run: rows are recorded and previewed, nothing is sent."""
    from webapp.sync.settings import PracticeSettings, SettingsError

    try:
        settings = PracticeSettings.from_dict({"time_zone": practice.time_zone, **(practice.settings or {})})
    except SettingsError:
        return (practice.settings or {}).get("dry_run") is True
    return bool(getattr(settings, "dry_run", (practice.settings or {}).get("dry_run") is True))


def push(practice_id: int, worker: str, *, time_budget: float = 30.0,
         client_factory: Callable | None = None, connection_id: int | None = None) -> PushResult:
    """Push one practice's due rows for up to `time_budget` seconds; never sleeps on the budget.

    With `connection_id`, only that organisation's rows; else every active organisation of the practice in
    turn (sharing the time budget), with the results added up."""
    practice = db.session.get(Practice, practice_id)
    if practice is None:
        return PushResult(stopped="practice deleted")
    if not practice.sync_enabled:
        return PushResult(stopped="sync is off for this practice")
    if dry_run(practice):
        return PushResult(stopped="dry run")
    if routing.assign(practice_id):
        db.session.commit()
    if connection_id is not None:
        connection = db.session.get(XeroConnection, connection_id)
        if connection is None or connection.practice_id != practice_id or connection.status != "active":
            return PushResult(stopped="no active Xero connection")
        targets = [connection]
    else:
        targets = [c for c in routing.connections(practice_id) if c.status == "active"]
    if not targets:
        return PushResult(stopped="no active Xero connection")
    deadline = time.monotonic() + time_budget
    total = PushResult()
    for connection in targets:
        result = _push_organisation(practice, connection, worker, max(deadline - time.monotonic(), 0.5),
                                    client_factory)
        _add(total, result)
    total.next_due_at = next_due(practice_id, connection_id)
    if total.held and total.reschedule_at is None:
        # Rows held back for a full batch are due, but pushing again now would only hold them again: the next
        # page of the backfill queues a push, and so does its end (then the rest leaves in partial batches).
        total.next_due_at = None
        total.stopped = "; ".join(filter(None, (total.stopped, HELD_FOR_BATCH)))
    return total


def _push_organisation(practice: Practice, connection: XeroConnection, worker: str, time_budget: float,
                       client_factory: Callable | None) -> PushResult:
    from webapp.practices import xero_budget
    from webapp.xero.connections import client_for

    ctx = load(practice, connection)
    xero = client_factory(connection) if client_factory else client_for(connection, budget=xero_budget())
    pusher = Pusher(ctx, xero, worker, int(current_app.config["XERO_BATCH_SIZE"]))
    pusher.full_batches_only = discovering(practice.id)
    return pusher.run(time.monotonic() + time_budget)


def discovering(practice_id: int) -> bool:
    """True while one of the practice's backfills is reading Cliniko (the push after its last page sends
    what is left in partial batches)."""
    from webapp.models import Backfill

    return bool(db.session.scalar(select(
        select(Backfill.id).where(Backfill.practice_id == practice_id, Backfill.state == "running").exists())))


def _add(total: PushResult, result: PushResult) -> None:
    for name in ("batches", "synced", "failed", "retrying", "waiting", "held"):
        setattr(total, name, getattr(total, name) + getattr(result, name))
    for kind, count in result.by_kind.items():
        total.by_kind[kind] = total.by_kind.get(kind, 0) + count
    if result.reschedule_at is not None:
        total.reschedule_at = min(filter(None, (total.reschedule_at, result.reschedule_at)))
    if result.stopped:
        total.stopped = "; ".join(filter(None, (total.stopped, result.stopped)))
