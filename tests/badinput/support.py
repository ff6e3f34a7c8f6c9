"""Staging exact Cliniko records in the sandbox, one poll + drain, and what a user (and Xero) then sees."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from tests.support.engine import Clinic
from webapp.extensions import db
from webapp.models import Practice, SyncJob

log = logging.getLogger(__name__)

KEY = "sandbox-key-au1"
UA = "Cliniko Xero Sync tests (tests@example.com)"
GOOD_ID, GOOD_NUMBER = "800001", 5001
BAD_ID, BAD_NUMBER = "700001", 4001
PATIENT_ID = "600001"


class Stage:
    """A wired clinic plus helpers to stage records, run discovery and push, and read the outcome."""

    def __init__(self, clinic: Clinic, web):
        self.clinic = clinic
        self.web = web
        self.practice_id = clinic.practice.id
        now = datetime.fromisoformat(clinic.cliniko("GET", "clock")["now"].replace("Z", "+00:00"))
        self.t0 = now - timedelta(hours=2)
        self.business_id = self._first("businesses", lambda b: not b.get("archived_at"))
        self.practitioner_id = self._first("practitioners")
        self.item_id = self._first("billable_items", lambda b: b["name"] == "Standard Consultation")
        practice = db.session.get(Practice, self.practice_id)
        practice.poll_cursors = {"invoices": self.t0.isoformat()}
        db.session.commit()
        self.load(patients=[self.patient(PATIENT_ID)])

    # -- sandbox Cliniko --------------------------------------------------------------------------
    def api(self, path: str) -> dict:
        response = requests.get(f"{self.clinic.cliniko_url}/v1/{path}", auth=(KEY, ""),
                                headers={"User-Agent": UA, "Accept": "application/json"}, timeout=30)
        response.raise_for_status()
        return response.json()

    def _first(self, resource: str, keep=lambda r: True) -> str:
        return next(r["id"] for r in self.api(resource)[resource] if keep(r))

    def load(self, **tables) -> dict:
        """POST /_sandbox/load; bare NaN/Infinity are allowed through so they can be staged."""
        response = requests.post(f"{self.clinic.cliniko_url}/_sandbox/load", data=json.dumps(tables, allow_nan=True),
                                 headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 200, response.text[:500]
        return response.json()

    def faults(self, **settings) -> dict:
        return self.clinic.cliniko("POST", "faults", json=settings)

    def at(self, minutes: float) -> str:
        return (self.t0 + timedelta(minutes=minutes)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def patient(self, pid: str, **fields) -> dict:
        return {"id": pid, "first_name": "Jane", "last_name": f"Doe{pid}", "email": f"p{pid}@example.com",
                "created_at": self.at(0), "updated_at": self.at(0), **fields}

    def invoice(self, iid: str, number, minutes: float, **fields) -> dict:
        record = {"id": iid, "number": number, "patient_id": PATIENT_ID, "business_id": self.business_id,
                  "practitioner_id": self.practitioner_id, "issue_date": self.at(minutes)[:10], "status": 10,
                  "status_description": "Open", "closed_at": None, "created_at": self.at(minutes),
                  "updated_at": self.at(minutes)}
        record.update(fields)
        return {k: v for k, v in record.items() if v is not ...}

    def item(self, iid: str, invoice_id: str, **fields) -> dict:
        """A $90 + 10 % GST line (99.00), every derived amount given so that odd values are kept as is."""
        record = {"id": iid, "invoice_id": invoice_id, "billable_item_id": self.item_id,
                  "name": "Standard Consultation", "code": "STD", "tax_name": "GST", "tax_rate": 10,
                  "unit_price": "90.0", "quantity": 1, "discount_percentage": 0, "discounted_amount": "0.0",
                  "is_monetary_discount": False, "net_price": "90.0", "tax_amount": 10,
                  "total_including_tax": "99.0", "created_at": self.at(0), "updated_at": self.at(0)}
        record.update(fields)
        return {k: v for k, v in record.items() if v is not ...}

    def good(self, minutes: float = 30) -> dict:
        """A plain invoice staged after the bad one: it must reach Xero and carry the cursor past the bad one."""
        return {"invoices": [self.invoice(GOOD_ID, GOOD_NUMBER, minutes, total_amount="99.0", net_amount="90.0",
                                          tax_amount="9.0", discounted_amount="0.0")],
                "invoice_items": [self.item("800002", GOOD_ID)]}

    # -- the app -----------------------------------------------------------------------------------
    def poll(self, client_factory=None):
        """One discovery pass; returns the exception it raised (None when it completed)."""
        from webapp.sync.discovery import poll

        try:
            poll(self.practice_id, client_factory=client_factory)
        except Exception as exc:  # noqa: BLE001 - the test inspects what leaked
            db.session.rollback()
            log.warning("poll raised %r", exc)
            return exc
        return None

    def drain(self, timeout: float = 30) -> None:
        from webapp.sync_cli import drain

        drain(self.practice_id, timeout=timeout)

    def cycle(self):
        """Poll then push everything that is due (bounded); returns what the poll raised, if anything."""
        error = self.poll()
        self.drain()
        return error

    def practice(self) -> Practice:
        db.session.expire_all()
        return db.session.get(Practice, self.practice_id)

    def cursor(self) -> datetime | None:
        value = (self.practice().poll_cursors or {}).get("invoices")
        return datetime.fromisoformat(value) if value else None

    def row(self, kind: str, cliniko_id: str) -> SyncJob | None:
        db.session.expire_all()
        return db.session.scalar(select(SyncJob).where(
            SyncJob.practice_id == self.practice_id, SyncJob.kind == kind, SyncJob.cliniko_id == cliniko_id))

    def rows(self, kind: str | None = None) -> list[SyncJob]:
        return self.clinic.rows(kind)

    def xero_invoices(self) -> dict[str, dict]:
        return {i["InvoiceNumber"]: i for i in self.clinic.xero_org()["invoices"] if i.get("Type") == "ACCREC"}

    def xero_contacts(self) -> dict[str, dict]:
        return {c.get("ContactNumber"): c for c in self.clinic.xero_org()["contacts"]}

    def assert_good_synced(self) -> None:
        """The control invoice reached Xero once, in full, and the cursor passed everything staged before it."""
        row = self.row("invoice", GOOD_ID)
        assert row is not None and row.status == "synced", (row and (row.status, row.failure_reason))
        xero = self.xero_invoices()[row.invoice_number]
        assert Decimal(str(xero["Total"])) == Decimal("99.00")
        assert self.cursor() >= datetime.fromisoformat(self.at(30).replace("Z", "+00:00"))
        assert self.practice().last_poll_error is None


IDS = [f"7100{n:02d}" for n in range(5)]


def stage_five(stage: Stage) -> list[str]:
    """Five plain invoices, one minute apart; returns their updated_at values."""
    invoices, items = [], []
    for n, iid in enumerate(IDS):
        invoices.append(stage.invoice(iid, 2000 + n, 10 + n, total_amount="99.0"))
        items.append(stage.item(iid + "01", iid))
    stage.load(invoices=invoices, invoice_items=items)
    return [stage.at(10 + n) for n in range(5)]


def small_pages(monkeypatch, stage: Stage, on_call=None):
    """Discovery commits every 2 invoices and the client reads 2 a page, so a poll spans several commits."""
    from webapp.practices import cliniko_client
    from webapp.sync import discovery

    original = discovery._pages
    monkeypatch.setattr(discovery, "_pages", lambda records, size=2: original(records, 2))
    calls: list[str] = []

    def record(call):
        calls.append(urlsplit(call.url).path)
        if on_call:
            on_call(call, calls)

    return calls, lambda practice: cliniko_client(practice, per_page=2, id_chunk=200, sleep=lambda s: None,
                                                  on_call=record)


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def sent_body(job_id: int) -> dict:
    """The request element of a row's successful attempt."""
    from webapp.models import SyncAttempt

    db.session.expire_all()
    attempt = db.session.scalar(select(SyncAttempt).where(SyncAttempt.job_id == job_id,
                                                          SyncAttempt.outcome == "synced"))
    assert attempt is not None, f"row {job_id} has no synced attempt"
    return attempt.request_body


Stage.sent_body = staticmethod(sent_body)
