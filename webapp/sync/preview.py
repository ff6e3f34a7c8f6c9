"""What would be sent to Xero for a job row now, and the rule behind each choice (no HTTP).

Used by the job detail page when a row was never sent (or is waiting to be sent again): the same
plans the push uses (webapp.sync.plans) on the row's Cliniko snapshot and the practice's current
settings, mappings and Xero lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import SyncJob
from webapp.sync import plans
from webapp.sync.context import PracticeContext, load
from webapp.sync.mapping_common import MappingError
from webapp.sync.settings import SettingsError
from webapp.sync.snapshot import to_json


@dataclass
class Preview:
    """The payload (JSON-safe) that would be sent, the reasons behind it, or why nothing would be sent.

    `reasons` are dicts {line (None or 0-based line index), field, value, rule}; `error` is a
    MappingError-like object with `category`, `reason` and `fix` (or None); `note` says why there is
    no preview at all for a kind (e.g. voids carry no payload of their own).
    """

    payload: dict | None
    reasons: list[dict] = field(default_factory=list)
    skip_reason: str | None = None
    error: MappingError | None = None
    note: str | None = None


def _context(row: SyncJob) -> PracticeContext | MappingError:
    try:
        # The row's own organisation (its mappings, default accounts and lists); unrouted rows: the default.
        return load(row.practice, row.connection)
    except SettingsError as exc:
        return MappingError("mapping", f"The practice's settings cannot be used: {exc}",
                            "Correct the practice settings, then re-queue the row.")


def _sibling(row: SyncJob, kind: str, cliniko_id: str | None) -> SyncJob | None:
    """The row of `kind` this row depends on (a contact: the one in the same Xero organisation)."""
    if not cliniko_id:
        return None
    query = select(SyncJob).where(
        SyncJob.practice_id == row.practice_id, SyncJob.kind == kind, SyncJob.cliniko_id == cliniko_id)
    if kind == "contact":
        query = query.where(SyncJob.connection_id.is_not_distinct_from(row.connection_id))
    return db.session.scalar(query.limit(1))


def _reasons(reasons) -> list[dict]:
    out = []
    for reason in reasons or []:
        if isinstance(reason, dict):
            out.append({"line": reason.get("line"), "field": reason.get("field"),
                        "value": to_json(reason.get("value")), "rule": reason.get("rule")})
    return out


def _from_built(built: plans.Built) -> Preview:
    return Preview(payload=to_json(built.payload) if built.payload is not None else None,
                   reasons=_reasons(built.reasons), skip_reason=built.skip, error=built.error)


def explain_invoice(row: SyncJob) -> Preview:
    """The preview for an invoice row (also contact and payment rows; other kinds get a note)."""
    if not row.source:
        return Preview(None, note="Nothing was read from Cliniko for this row yet, so there is nothing to preview.")
    ctx = _context(row)
    if isinstance(ctx, MappingError):
        return Preview(None, error=ctx)
    try:
        if row.kind in ("invoice", "appointment"):
            contact = _sibling(row, "contact", row.parent_cliniko_id)
            contact_id = contact.xero_id if contact is not None and contact.status == "synced" else None
            return _from_built(plans.invoice_for_row(ctx, row, contact_id))
        if row.kind == "contact":
            return _from_built(plans.contact(ctx, row.source))
        if row.kind == "payment":
            invoice = _sibling(row, "invoice", row.cliniko_id)
            xero_id = invoice.xero_id if invoice is not None and invoice.status == "synced" else None
            return _from_built(plans.payment(ctx, row.source, xero_id, row.amount))
    except MappingError as exc:  # plans catch these; a stray one is still shown, not a 500
        return Preview(None, error=exc)
    return Preview(None, note=f"A {row.kind.replace('_', ' ')} row changes an existing Xero record; it has no "
                              "payload of its own to preview.")
