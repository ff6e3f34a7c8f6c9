"""Helpers shared by the job list tests (no tests here): rows made directly with the models."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert

from webapp.extensions import db
from webapp.models import SyncJob

PASSWORD = "correct horse battery"
BASE_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STATES = ("failed", "synced", "pending", "ignored", "skipped")


def make_jobs(practice, count: int, *, start: int = 0, ties: int = 3, **fields) -> list[int]:
    """Insert `count` invoice rows; every `ties` consecutive rows share one updated_at (keyset ties)."""
    values = []
    for i in range(start, start + count):
        status = fields.get("status") or STATES[i % len(STATES)]
        values.append({
            "practice_id": practice.id,
            "kind": fields.get("kind", "invoice"),
            "cliniko_id": str(100000 + i),
            "invoice_number": f"INV-{i:05d}",
            "patient_name": fields.get("patient_name") or f"Patient {i:05d}",
            "amount": Decimal("110.00") + i,
            "status": status,
            "error_category": fields.get("error_category", "mapping" if status == "failed" else None),
            "failure_reason": "Account 250 is archived in Xero." if status == "failed" else None,
            "xero_id": f"00000000-0000-4000-8000-{i:012d}" if status == "synced" else None,
            "issue_date": BASE_TIME - timedelta(days=i % 30),
            "updated_at": BASE_TIME - timedelta(minutes=(i // ties)),
            "created_at": BASE_TIME - timedelta(days=1),
            "attempts": 1 if status in ("failed", "synced") else 0,
            "max_attempts": 12,
        })
    ids = db.session.scalars(insert(SyncJob).returning(SyncJob.id), values).all()
    db.session.commit()
    return list(ids)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def row_ids(html: str) -> list[int]:
    """Job ids in the order the list shows them."""
    return [int(x) for x in re.findall(r'data-job-id="(\d+)"', html)]


def link(html: str, rel: str) -> str | None:
    match = re.search(rf'href="([^"]+)" rel="{rel}"', html)
    return match.group(1).replace("&amp;", "&") if match else None


ARCHIVED_ACCOUNT = "250"  # "Consulting Revenue (old)" in sandbox Xero's chart
ACTIVE_ACCOUNT = "260"


def archived_mapping(clinic):
    """Map "Standard Consultation" to an archived Xero account, so its invoices fail with a mapping error."""
    from webapp.models import ClinikoRecord, Mapping

    item = db.session.scalars(select_record(ClinikoRecord, clinic.practice.id, "Standard Consultation")).one()
    mapping = Mapping(practice_id=clinic.practice.id, kind="billable_item", cliniko_id=item.cliniko_id,
                      cliniko_name=item.name, account_code=ARCHIVED_ACCOUNT)
    db.session.add(mapping)
    db.session.commit()
    return mapping


def select_record(model, practice_id, name):
    from sqlalchemy import select

    return select(model).where(model.practice_id == practice_id, model.kind == "billable_item", model.name == name)


def backfill(clinic, days: int = 400) -> None:
    """Discover and push every invoice of the sandbox clinic in this process."""
    from datetime import date

    from webapp.sync import backfill as backfills
    from webapp.sync_cli import drain

    row = backfills.start(clinic.practice, date.today() - timedelta(days=days), None)
    backfills.run(row.id)
    drain(clinic.practice.id, 60)
    db.session.expire_all()


def small_cliniko_app():
    from sandbox.cliniko.app import create_app

    return create_app(api_key="sandbox-key-au1", seed=3, patients=12, invoices=40)
