"""Cliniko reference data cached per practice: businesses, practitioners, billable items, products, taxes."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from webapp.clients.cliniko import ClinikoClient
from webapp.extensions import db
from webapp.models import ClinikoRecord, Practice, utcnow
from webapp.sync.snapshot import to_json

logger = logging.getLogger(__name__)

MAX_AGE = timedelta(hours=1)


def _name(kind: str, record: dict) -> str:
    if kind == "practitioner":
        parts = [record.get("title"), record.get("first_name"), record.get("last_name")]
        return " ".join(p for p in parts if p) or record.get("label") or f"Practitioner {record.get('id')}"
    if kind == "business":
        return record.get("business_name") or record.get("label") or f"Business {record.get('id')}"
    return record.get("name") or f"{kind.replace('_', ' ').title()} {record.get('id')}"


def _readers(client: ClinikoClient, practice: Practice | None = None):
    readers = {
        "business": lambda: client.businesses(),
        "practitioner": lambda: [*client.practitioners(), *client.inactive_practitioners()],
        "billable_item": client.billable_items,
        "product": client.products,
        "tax": client.taxes,
        "appointment_type": client.appointment_types,
    }
    if (practice is not None and (practice.settings or {}).get("invoice_source") == "appointments"):
        # Appointment mode prices visits itself, concessions included.
        readers["concession_type"] = client.concession_types
        readers["concession_price"] = client.concession_prices
    return readers


def refresh(practice: Practice, client: ClinikoClient) -> dict[str, int]:
    """Read every catalogue list from Cliniko and upsert it; returns counts per kind. Caller commits."""
    now = utcnow()
    counts = {}
    for kind, read in _readers(client, practice).items():
        rows = []
        for record in read():
            rows.append({
                "practice_id": practice.id, "kind": kind, "cliniko_id": str(record["id"]),
                "name": _name(kind, record)[:255], "archived": bool(record.get("archived_at")),
                "data": to_json(record), "refreshed_at": now,
            })
        if rows:
            stmt = insert(ClinikoRecord).values(rows)
            db.session.execute(stmt.on_conflict_do_update(
                index_elements=["practice_id", "kind", "cliniko_id"],
                set_={"name": stmt.excluded.name, "archived": stmt.excluded.archived, "data": stmt.excluded.data,
                      "refreshed_at": stmt.excluded.refreshed_at},
            ))
        counts[kind] = len(rows)
    logger.info("catalogue of practice %s refreshed: %s", practice.id, counts)
    return counts


def lookup(practice_id: int, kind: str) -> dict[str, dict]:
    """{cliniko_id: record} of one kind (records as stored, JSON types)."""
    rows = db.session.execute(
        select(ClinikoRecord.cliniko_id, ClinikoRecord.data)
        .where(ClinikoRecord.practice_id == practice_id, ClinikoRecord.kind == kind)
    )
    return {cid: data for cid, data in rows}


def is_stale(practice_id: int) -> bool:
    """True when the catalogue is empty or older than MAX_AGE."""
    newest = db.session.scalar(
        select(ClinikoRecord.refreshed_at).where(ClinikoRecord.practice_id == practice_id)
        .order_by(ClinikoRecord.refreshed_at.desc()).limit(1)
    )
    return newest is None or utcnow() - newest > MAX_AGE
