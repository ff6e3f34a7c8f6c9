"""Saving, disconnecting and reading reference data of a practice's Xero connections."""

from __future__ import annotations

import logging

from sqlalchemy import select

from webapp.audit import record
from webapp.clients.errors import AuthError, ClientError
from webapp.clients.xero import XeroClient
from webapp.clients.xero_auth import Tenant, TokenSet
from webapp.extensions import db
from webapp.models import Practice, User, XeroAccount, XeroConnection, XeroTaxRate, XeroTrackingOption, utcnow
from webapp.xero.identity import identity
from webapp.xero.tokens import access_token, store_tokens

logger = logging.getLogger(__name__)


def save_connection(practice: Practice, tenant: Tenant, tokens: TokenSet, user: User | None) -> XeroConnection:
    """Create or re-activate the practice's connection to this tenant with fresh tokens (caller commits)."""
    connection = db.session.scalar(
        select(XeroConnection).where(
            XeroConnection.practice_id == practice.id, XeroConnection.tenant_id == tenant.tenant_id
        )
    )
    if connection is None:
        connection = XeroConnection(practice_id=practice.id, tenant_id=tenant.tenant_id)
        db.session.add(connection)
    connection.tenant_name = tenant.tenant_name
    connection.connection_id = tenant.connection_id
    connection.status = "active"
    store_tokens(connection, tokens)
    db.session.flush()
    record("xero.connect", user=user, object_type="xero_connection", object_id=connection.id,
           practice_id=practice.id, details={"tenant": tenant.tenant_name, "tenant_id": tenant.tenant_id})
    return connection


def client_for(connection: XeroConnection, **kwargs) -> XeroClient:
    """An Accounting API client for this connection (tokens refreshed on demand)."""
    from flask import current_app

    kwargs.setdefault("read_timeout", float(current_app.config["XERO_READ_TIMEOUT_SECONDS"]))
    return XeroClient(
        current_app.config["XERO_API_URL"],
        lambda: access_token(connection.id),
        connection.tenant_id,
        **kwargs,
    )


def disconnect(connection: XeroConnection, user: User | None) -> list[str]:
    """Delete the connection at Xero, revoke the refresh token, wipe the tokens; returns problems met."""
    from webapp import crypto

    problems = []
    ident = identity()
    shared = False
    try:
        token = access_token(connection.id)
        # Revoking a refresh token removes every connection that Xero user gave this app, so when the
        # same user also connected another of our practices, only this connection is deleted.
        listed = {t.connection_id for t in ident.connections(token)}
        others = set(db.session.scalars(select(XeroConnection.connection_id).where(
            XeroConnection.id != connection.id, XeroConnection.status == "active")))
        shared = bool(listed & others)
        if connection.connection_id:
            ident.delete_connection(token, connection.connection_id)
    except Exception as exc:  # keep going: the local wipe must happen whatever Xero says
        problems.append(f"Could not delete the connection at Xero: {exc}")
    refresh = crypto.decrypt(connection.refresh_token_encrypted) if connection.refresh_token_encrypted else None
    if refresh and not shared:
        try:
            ident.revoke(refresh)
        except ClientError as exc:
            problems.append(f"Could not revoke the token at Xero: {exc}")
    db.session.refresh(connection)
    connection.access_token_encrypted = None
    connection.refresh_token_encrypted = None
    connection.access_expires_at = None
    connection.status = "revoked"
    connection.last_error = "; ".join(problems) or None
    record("xero.disconnect", user=user, object_type="xero_connection", object_id=connection.id,
           practice_id=connection.practice_id, details={"problems": problems} if problems else None)
    return problems


def refresh_reference_data(connection: XeroConnection) -> dict[str, int]:
    """Read Accounts, TaxRates and TrackingCategories into the picker tables; returns counts."""
    client = client_for(connection)
    try:
        accounts, tax_rates, categories = client.accounts(), client.tax_rates(), client.tracking_categories(
            include_archived=True
        )
    except AuthError as exc:
        raise ClientError(f"Xero refused to share the organisation's settings: {exc}") from None
    now = utcnow()
    cid = connection.id
    _replace(XeroAccount, cid, "account_id", [
        dict(account_id=a["AccountID"], code=a.get("Code"), name=a.get("Name") or "", type=a.get("Type") or "",
             status=a.get("Status") or "ACTIVE", tax_type=a.get("TaxType"),
             enable_payments_to_account=bool(a.get("EnablePaymentsToAccount")),
             system_account=a.get("SystemAccount") or None, refreshed_at=now)
        for a in accounts
    ])
    _replace(XeroTaxRate, cid, "tax_type", [
        dict(tax_type=t["TaxType"], name=t.get("Name") or "", status=t.get("Status") or "ACTIVE",
             effective_rate=t.get("EffectiveRate"), can_apply_to_revenue=bool(t.get("CanApplyToRevenue", True)),
             refreshed_at=now)
        for t in tax_rates
    ])
    _replace(XeroTrackingOption, cid, "option_id", [
        dict(category_id=c["TrackingCategoryID"], category_name=c.get("Name") or "",
             option_id=o["TrackingOptionID"], option_name=o.get("Name") or "",
             status=o.get("Status") if c.get("Status") == "ACTIVE" else "ARCHIVED", refreshed_at=now)
        for c in categories for o in c.get("Options") or []
    ])
    return {"accounts": len(accounts), "tax_rates": len(tax_rates),
            "tracking_options": sum(len(c.get("Options") or []) for c in categories)}


def _replace(model, connection_id: int, key: str, rows: list[dict]) -> None:
    """Upsert rows by key for this connection and delete those Xero no longer has."""
    current = db.session.scalars(select(model).where(model.connection_id == connection_id))
    existing = {getattr(r, key): r for r in current}
    for row in rows:
        obj = existing.pop(row[key], None)
        if obj is None:
            db.session.add(model(connection_id=connection_id, **row))
        else:
            for field, value in row.items():
                setattr(obj, field, value)
    for gone in existing.values():
        db.session.delete(gone)
