"""A connected, mapped, enabled practice against both sandboxes, for engine tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import requests
from sqlalchemy import select

from tests.support.servers import serve
from tests.support.xero import callback_path, consent_at_sandbox
from webapp import crypto
from webapp.extensions import db
from webapp.models import ClinikoRecord, Mapping, Practice, SyncJob

PASSWORD = "correct horse battery"
TAX_MAP = {"GST": "OUTPUT", "GST Free": "EXEMPTOUTPUT"}


@dataclass
class Clinic:
    """Handles on a practice wired to the sandboxes."""

    practice: Practice
    cliniko_url: str
    xero_url: str

    def cliniko(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.cliniko_url}/_sandbox/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def xero(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.xero_url}/_sandbox/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def xero_org(self) -> dict:
        return self.xero("GET", "state")["organisations"][0]

    def cliniko_invoices(self) -> list[dict]:
        return self.cliniko("GET", "state", params={"invoices": 1})["invoices"]

    def rows(self, kind: str | None = None) -> list[SyncJob]:
        db.session.expire_all()
        query = select(SyncJob).where(SyncJob.practice_id == self.practice.id)
        if kind:
            query = query.where(SyncJob.kind == kind)
        return db.session.scalars(query.order_by(SyncJob.id)).all()


def connect_practice(web, practice: Practice) -> None:
    """Run the real OAuth flow through the app's pages (admin must be signed in)."""
    authorize = web.client.get(f"/practices/{practice.id}/xero/connect").headers["Location"]
    response = web.client.get(callback_path(consent_at_sandbox(authorize, "Demo Clinic Pty Ltd")))
    assert response.status_code == 302


def map_taxes(practice: Practice, mapping: dict[str, str] = TAX_MAP) -> None:
    """Map Cliniko taxes by name to Xero tax types (the catalogue must be loaded)."""
    taxes = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == "tax")).all()
    for tax in taxes:
        if tax.name in mapping:
            db.session.add(Mapping(practice_id=practice.id, kind="tax", cliniko_id=tax.cliniko_id,
                                   cliniko_name=tax.name, tax_type=mapping[tax.name]))
    db.session.commit()


def wire_clinic(app, web, make_user, make_practice, cliniko_app, xero_url: str, *, slug="demo",
                defaults=None, enable=True):
    """Create, connect, map and enable a practice; returns a context manager yielding Clinic."""
    from webapp.practices import cliniko_client, set_defaults
    from webapp.practices import enable as enable_practice
    from webapp.sync import catalogue

    class _Ctx:
        def __enter__(self):
            self.server = serve(cliniko_app)
            url = self.server.__enter__()
            app.config["CLINIKO_API_URL"] = f"{url}/v1"
            practice = make_practice(slug)
            practice.cliniko_api_key_encrypted = crypto.encrypt("sandbox-key-au1")
            db.session.commit()
            make_user("admin@example.com")
            web.login("admin@example.com", PASSWORD)
            connect_practice(web, practice)
            set_defaults(practice, None, **(defaults or {"sales_account": "200", "payment_account": "090",
                                                        "rounding_account": "860",
                                                        "tax_exempt": "EXEMPTOUTPUT"}))
            catalogue.refresh(practice, cliniko_client(practice))
            db.session.commit()
            map_taxes(practice)
            if enable:
                enable_practice(practice, None)
            db.session.commit()
            return Clinic(practice, url, xero_url)

        def __exit__(self, *exc):
            return self.server.__exit__(*exc)

    return _Ctx()


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def audit_xero_against_cliniko(clinic: Clinic) -> dict:
    """Every invoice, contact and payment in Xero exactly once; totals to the cent. Returns counts."""
    org = clinic.xero_org()
    numbers = [i["InvoiceNumber"] for i in org["invoices"] if i["Type"] == "ACCREC"]
    assert len(numbers) == len(set(numbers)), "an invoice number appears twice in Xero"
    contact_numbers = [c["ContactNumber"] for c in org["contacts"] if c.get("ContactNumber")]
    assert len(contact_numbers) == len(set(contact_numbers)), "a contact appears twice in Xero"
    by_number = {i["InvoiceNumber"]: i for i in org["invoices"]}
    synced = [r for r in clinic.rows("invoice") if r.status == "synced"]
    for row in synced:
        xero = by_number[row.invoice_number]
        assert money(xero["Total"]) == money(row.amount), f"{row.invoice_number}: totals differ"
    payments = 0
    removed = {(r.source or {}).get("payment_id") for r in clinic.rows("payment_delete") if r.status == "synced"}
    for row in clinic.rows("payment"):
        if row.status != "synced" or row.xero_id in removed:
            continue
        xero = by_number[row.invoice_number]
        live = [p for p in xero["payments"] if p.get("Status") != "DELETED"]
        ours = [p for p in live if p.get("Reference", "").endswith(row.invoice_number)]
        assert len(ours) == 1, f"{row.invoice_number}: {len(ours)} payments"
        assert money(ours[0]["Amount"]) == money(row.amount)
        payments += 1
    for row in clinic.rows("payment"):
        if row.status == "synced" and row.xero_id in removed:
            live = [p for p in by_number[row.invoice_number]["payments"] if p.get("Status") != "DELETED"]
            assert not live, f"{row.invoice_number}: a payment we removed is still in Xero"
    return {"invoices": len(synced), "contacts": len(contact_numbers), "payments": payments}


def invoice_calls(clinic: Clinic) -> list[int]:
    """The number of invoices in each call that sent invoices to Xero, in the order sent (from the attempts)."""
    from sqlalchemy import func

    from webapp.models import SyncAttempt

    return list(db.session.scalars(
        select(func.count()).select_from(SyncAttempt).join(SyncJob, SyncJob.id == SyncAttempt.job_id)
        .where(SyncJob.practice_id == clinic.practice.id, SyncJob.kind == "invoice",
               SyncAttempt.batch_id.notin_(("mapping", "lookup")))
        .group_by(SyncAttempt.batch_id).order_by(func.min(SyncAttempt.started_at))))
