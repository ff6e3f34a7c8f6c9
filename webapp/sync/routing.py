"""Routing: which of a practice's Xero organisations each job row goes to.

- An invoice or appointment row goes to the organisation its Cliniko business is routed to
  (`business_routes`), else to the practice's default organisation (its first active connection).
- Payment, payment-removal and void rows go where their invoice is.
- Contact rows are one per (patient, organisation): a patient seen at two businesses routed to two
  organisations has a contact in each. A contact row is made for an organisation when one of the
  patient's invoices there needs it (here, and lazily by the push).
- Changing a business's route moves its rows not yet in Xero (and their follow-ups and the contacts
  they now need) to the new organisation in one transaction; rows already in Xero stay where they are,
  and so do their later updates, payments and voids.

Rows are routed as soon as they are recorded when the practice has one organisation; with several, the
rows discovery records are routed by `assign` right after each discovery pass and before each push.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text

from webapp.audit import record
from webapp.extensions import db
from webapp.models import INVOICE_KINDS, BusinessRoute, Practice, SyncJob, User, XeroConnection, utcnow
from webapp.sync import states

logger = logging.getLogger(__name__)

FOLLOWUP_KINDS = ("payment", "payment_delete", "void")
#: States of a row not yet in Xero that a routing change moves (`running` rows are in flight: they stay).
MOVABLE = ("pending", "retrying", "waiting", "failed", "skipped", "ignored")
#: The Cliniko business of an invoice or appointment row (from its snapshot).
ROW_BUSINESS = "coalesce(source #>> '{invoice,business_id}', source #>> '{appointment,business_id}')"


class RoutingError(ValueError):
    """A route cannot be set; the message says why."""


def connections(practice_id: int) -> list[XeroConnection]:
    """The practice's organisations still connected (active or needing a reconnect), oldest first."""
    return list(db.session.scalars(select(XeroConnection).where(
        XeroConnection.practice_id == practice_id, XeroConnection.status != "revoked").order_by(XeroConnection.id)))


def default_connection(practice_id: int) -> XeroConnection | None:
    """Where unrouted businesses go: the first active connection, else the first one needing a reconnect."""
    found = connections(practice_id)
    return next((c for c in found if c.status == "active"), found[0] if found else None)


def routes(practice_id: int) -> dict[str, int]:
    """{Cliniko business id: connection id} of the businesses routed to a connected organisation."""
    rows = db.session.execute(
        select(BusinessRoute.cliniko_business_id, BusinessRoute.connection_id)
        .join(XeroConnection, XeroConnection.id == BusinessRoute.connection_id)
        .where(BusinessRoute.practice_id == practice_id, XeroConnection.status != "revoked"))
    return {str(b): c for b, c in rows}


def route_of(practice_id: int, business_id: str | None) -> int | None:
    """The connection id a business's invoices go to now."""
    routed = routes(practice_id).get(str(business_id)) if business_id else None
    if routed is not None:
        return routed
    default = default_connection(practice_id)
    return default.id if default is not None else None


def single_connection_id(practice_id: int) -> int | None:
    """The practice's only organisation, when it has exactly one (rows can then be routed when recorded)."""
    found = connections(practice_id)
    return found[0].id if len(found) == 1 else None


def assign(practice_id: int) -> int:
    """Route the practice's rows that have no organisation yet (caller commits); returns rows routed.

    Set-based, and cheap when there is nothing to do (a partial index holds only unrouted rows)."""
    default = default_connection(practice_id)
    if default is None:
        return 0
    params = {"p": practice_id, "default": default.id, "kinds": list(INVOICE_KINDS),
              "followups": list(FOLLOWUP_KINDS)}
    invoices = db.session.execute(text("""
        UPDATE sync_jobs j SET connection_id = coalesce(
            (SELECT r.connection_id FROM business_routes r JOIN xero_connections c ON c.id = r.connection_id
             WHERE r.practice_id = j.practice_id AND c.status <> 'revoked'
               AND r.cliniko_business_id = coalesce(j.source #>> '{invoice,business_id}',
                                                    j.source #>> '{appointment,business_id}')),
            :default)
        WHERE j.practice_id = :p AND j.connection_id IS NULL AND j.kind = ANY(:kinds) AND j.source IS NOT NULL
    """), params).rowcount
    followups = db.session.execute(text("""
        UPDATE sync_jobs f SET connection_id = (
            SELECT i.connection_id FROM sync_jobs i
            WHERE i.practice_id = f.practice_id AND i.kind = ANY(:kinds) AND i.cliniko_id = f.cliniko_id
            ORDER BY (i.kind = 'invoice') DESC LIMIT 1)
        WHERE f.practice_id = :p AND f.connection_id IS NULL AND f.kind = ANY(:followups)
    """), params).rowcount
    # A new patient's contact row goes where one of its invoices went (a kept invoice first); a second
    # unrouted row of a patient who already has one (two discoveries crossing) is dropped: it was never sent.
    db.session.execute(text("""
        DELETE FROM sync_jobs c WHERE c.practice_id = :p AND c.kind = 'contact' AND c.connection_id IS NULL
          AND c.attempts = 0 AND EXISTS (SELECT 1 FROM sync_jobs d WHERE d.practice_id = c.practice_id
              AND d.kind = 'contact' AND d.cliniko_id = c.cliniko_id AND d.connection_id IS NOT NULL)
    """), params)
    contacts = db.session.execute(text("""
        UPDATE sync_jobs c SET connection_id = coalesce(
            (SELECT i.connection_id FROM sync_jobs i
             WHERE i.practice_id = c.practice_id AND i.kind = ANY(:kinds) AND i.parent_cliniko_id = c.cliniko_id
               AND i.connection_id IS NOT NULL
             ORDER BY (i.status IN ('skipped', 'ignored')), i.id LIMIT 1),
            :default)
        WHERE c.practice_id = :p AND c.kind = 'contact' AND c.connection_id IS NULL
    """), params).rowcount
    total = invoices + followups + contacts
    if total:
        logger.info("practice %s: routed %s invoice, %s follow-up and %s contact rows", practice_id, invoices,
                    followups, contacts)
    return total


def ensure_contact_rows(practice_id: int, connection_id: int, patient_ids: Iterable[str]) -> int:
    """Make sure each patient has a contact row for this organisation (caller commits); returns rows made
    or re-queued. A new row copies the patient's details from the patient's freshest contact row."""
    from webapp.sync.changes import _ensure_rows, _new

    ids = sorted({str(p) for p in patient_ids if p})
    if not ids:
        return 0
    rows = db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind == "contact", SyncJob.cliniko_id.in_(ids))
        .order_by(SyncJob.updated_at.desc(), SyncJob.id.desc())).all()
    mine = {r.cliniko_id: r for r in rows if r.connection_id == connection_id}
    template: dict[str, SyncJob] = {}
    for r in rows:
        template.setdefault(r.cliniko_id, r)
    changed = 0
    values = []
    for pid in ids:
        row = mine.get(pid)
        if row is not None:
            if row.status == "skipped" and row.xero_id is None:
                states.requeue(row)  # a routing change had left it unneeded; needed again now
                changed += 1
            continue
        like = template.get(pid)
        values.append(_new(practice_id, "contact", pid, connection_id=connection_id,
                           priority=like.priority if like is not None else 0,
                           source=like.source if like is not None else {"patient": {"id": pid}},
                           patient_name=like.patient_name if like is not None else None,
                           payload_hash=like.payload_hash if like is not None else None))
    if values:
        _ensure_rows(practice_id, "contact", values)
        changed += len(values)
    return changed


@dataclass
class Moved:
    """What a routing change moved."""

    invoices: int = 0
    followups: int = 0
    contacts: int = 0

    @property
    def total(self) -> int:
        return self.invoices + self.followups + self.contacts


def movable_rows(practice_id: int, business_id: str, target: int | None) -> list[SyncJob]:
    """The business's invoice rows not in Xero yet that are routed elsewhere (locked for the move)."""
    return list(db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind.in_(INVOICE_KINDS), SyncJob.xero_id.is_(None),
        SyncJob.status.in_(MOVABLE), SyncJob.reconcile.is_(False), SyncJob.connection_id.is_not(None),
        SyncJob.connection_id.is_distinct_from(target), text(ROW_BUSINESS + " = :business"),
    ).params(business=str(business_id)).order_by(SyncJob.id).with_for_update()))


def move(practice_id: int, rows: list[SyncJob], target: int) -> Moved:
    """Move invoice rows (not in Xero) to another organisation with their follow-ups and the contacts they
    need; contact rows left unneeded in the old organisation (never sent) move too or are skipped.
    Caller commits."""
    moved = Moved()
    if not rows:
        return moved
    sources = {r.connection_id for r in rows}
    ids = [r.cliniko_id for r in rows]
    for row in rows:
        row.connection_id = target
    moved.invoices = len(rows)
    followups = db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind.in_(FOLLOWUP_KINDS), SyncJob.cliniko_id.in_(ids),
        SyncJob.status != "running", SyncJob.status != "synced", SyncJob.connection_id.in_(sources))).all()
    for row in followups:
        row.connection_id = target
    moved.followups = len(followups)
    db.session.flush()

    patients = sorted({r.parent_cliniko_id for r in rows if r.parent_cliniko_id})
    if patients:
        moved.contacts = _move_contacts(practice_id, patients, sources, target)
        _release_ready(practice_id, rows, target)
    return moved


def _move_contacts(practice_id: int, patients: list[str], sources: set[int], target: int) -> int:
    contacts = db.session.scalars(select(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.kind == "contact", SyncJob.cliniko_id.in_(patients))
        .order_by(SyncJob.id).with_for_update()).all()
    still_needed = set(db.session.execute(select(SyncJob.parent_cliniko_id, SyncJob.connection_id).where(
        SyncJob.practice_id == practice_id, SyncJob.kind.in_(INVOICE_KINDS), SyncJob.parent_cliniko_id.in_(patients),
        SyncJob.connection_id.in_(sources), SyncJob.status.not_in(("skipped", "ignored")))).all())
    names = {c.id: c.tenant_name for c in db.session.scalars(
        select(XeroConnection).where(XeroConnection.id.in_([target])))}
    count = 0
    has_target = {c.cliniko_id for c in contacts if c.connection_id == target}
    for contact in contacts:
        if contact.connection_id not in sources or contact.xero_id is not None or contact.status == "running":
            continue
        if (contact.cliniko_id, contact.connection_id) in still_needed:
            continue
        if contact.cliniko_id not in has_target:
            contact.connection_id = target  # the patient's contact goes with the invoices
            has_target.add(contact.cliniko_id)
            count += 1
        elif contact.status in ("pending", "retrying", "waiting", "failed"):
            states.skip(contact, f"Not needed here any more: the patient's invoices go to {names.get(target)}")
    db.session.flush()
    count += ensure_contact_rows(practice_id, target, [p for p in patients if p not in has_target])
    return count


def _release_ready(practice_id: int, rows: list[SyncJob], target: int) -> None:
    """Moved invoices that waited for a contact the new organisation already has are due now."""
    waiting = [r for r in rows if r.status == "waiting" and r.parent_cliniko_id]
    if not waiting:
        return
    ready = set(db.session.scalars(select(SyncJob.cliniko_id).where(
        SyncJob.practice_id == practice_id, SyncJob.kind == "contact", SyncJob.connection_id == target,
        SyncJob.status == "synced", SyncJob.cliniko_id.in_([r.parent_cliniko_id for r in waiting]))))
    for row in waiting:
        if row.parent_cliniko_id in ready:
            states.release_waiting(row)


def set_route(practice: Practice, business_id: str, connection_id: int | None, user: User | None) -> Moved:
    """Route a Cliniko business to one of the practice's organisations (None: the default), move its rows
    not yet in Xero there, audit, commit, and enqueue a push. RoutingError for an organisation that is not
    the practice's."""
    business_id = str(business_id).strip()
    if not business_id:
        raise RoutingError("Choose a Cliniko business.")
    if connection_id is not None:
        connection = db.session.get(XeroConnection, connection_id)
        if connection is None or connection.practice_id != practice.id or connection.status == "revoked":
            raise RoutingError("That Xero organisation is not connected to this practice.")
    existing = db.session.scalar(select(BusinessRoute).where(
        BusinessRoute.practice_id == practice.id, BusinessRoute.cliniko_business_id == business_id))
    before = existing.connection_id if existing is not None else None
    if connection_id is None and existing is not None:
        db.session.delete(existing)
    elif connection_id is not None and existing is None:
        db.session.add(BusinessRoute(practice_id=practice.id, cliniko_business_id=business_id,
                                     connection_id=connection_id))
    elif connection_id is not None:
        existing.connection_id = connection_id
        existing.updated_at = utcnow()
    db.session.flush()
    target = route_of(practice.id, business_id)
    moved = move(practice.id, movable_rows(practice.id, business_id, target), target) if target else Moved()
    record("routing.change", user=user, object_type="business", object_id=business_id, practice_id=practice.id,
           details={"from": before, "to": connection_id, "organisation": target, "moved": moved.__dict__})
    db.session.commit()
    if moved.total:
        _enqueue_push(practice.id)
    return moved


def reroute_connection(connection: XeroConnection) -> Moved:
    """A disconnected organisation's rows not in Xero yet go where their businesses route now (caller commits)."""
    total = Moved()
    rows = db.session.scalars(select(SyncJob).where(
        SyncJob.connection_id == connection.id, SyncJob.kind.in_(INVOICE_KINDS), SyncJob.xero_id.is_(None),
        SyncJob.status.in_(MOVABLE), SyncJob.reconcile.is_(False)).with_for_update()).all()
    by_target: dict[int, list[SyncJob]] = {}
    for row in rows:
        business = ((row.source or {}).get("invoice") or (row.source or {}).get("appointment") or {}).get(
            "business_id")
        target = route_of(connection.practice_id, business)
        if target is not None and target != connection.id:
            by_target.setdefault(target, []).append(row)
    for target, group in by_target.items():
        moved = move(connection.practice_id, group, target)
        total.invoices += moved.invoices
        total.followups += moved.followups
        total.contacts += moved.contacts
    return total


def _enqueue_push(practice_id: int) -> None:
    from jobs.sync import enqueue_push

    try:
        enqueue_push(practice_id)
    except Exception:  # Redis down: the reaper enqueues a push for every practice with due rows
        logger.exception("could not enqueue a push for practice %s", practice_id)


def businesses(practice_id: int) -> list[tuple[str, str, bool]]:
    """(Cliniko business id, name, archived) of the practice's cached businesses, active first, by name."""
    from webapp.models import ClinikoRecord

    rows = db.session.execute(select(ClinikoRecord.cliniko_id, ClinikoRecord.name, ClinikoRecord.archived).where(
        ClinikoRecord.practice_id == practice_id, ClinikoRecord.kind == "business")
        .order_by(ClinikoRecord.archived, ClinikoRecord.name, ClinikoRecord.cliniko_id)).all()
    return [(str(cid), name, archived) for cid, name, archived in rows]


def routed_businesses(practice_id: int, shown: list[XeroConnection]) -> tuple[XeroConnection | None,
                                                                            dict[int, list[str]]]:
    """The default organisation and {connection id: names of the businesses whose invoices go there}."""
    default = default_connection(practice_id)
    chosen = routes(practice_id)
    result: dict[int, list[str]] = {c.id: [] for c in shown}
    for cid, name, _archived in businesses(practice_id):
        target = chosen.get(cid) or (default.id if default is not None else None)
        if target in result:
            result[target].append(name)
    return default, result
