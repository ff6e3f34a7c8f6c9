"""Practice-level operations: clients built from config, Cliniko test, default accounts, enabling."""

from __future__ import annotations

import logging
import re

from flask import current_app
from sqlalchemy import select

from webapp import crypto
from webapp.audit import record
from webapp.clients.cliniko import ClinikoClient, ConnectionInfo
from webapp.clients.rate_limit import BudgetSettings, RateBudget
from webapp.extensions import db
from webapp.models import Practice, User, XeroAccount, XeroConnection, XeroTaxRate
from webapp.redis_conn import redis_client

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PracticeError(ValueError):
    """A setting cannot be applied; the message says what to do."""


def xero_budget() -> RateBudget:
    """The shared Xero rate budget with the limits from config."""
    c = current_app.config
    return RateBudget(redis_client(), BudgetSettings(
        window_seconds=float(c["XERO_RATE_WINDOW_SECONDS"]), calls_per_window=int(c["XERO_CALLS_PER_WINDOW"]),
        max_concurrent=int(c["XERO_MAX_CONCURRENT"]), daily_calls=int(c["XERO_DAILY_CALLS"]),
        app_calls_per_window=int(c["XERO_APP_CALLS_PER_WINDOW"]),
    ), namespace="xero")


def cliniko_budget() -> RateBudget:
    """The shared per-key Cliniko budget (calls per minute, no concurrency or daily cap)."""
    per_minute = int(current_app.config["CLINIKO_CALLS_PER_MINUTE"])
    return RateBudget(redis_client(), BudgetSettings(
        window_seconds=60.0, calls_per_window=per_minute, max_concurrent=0, daily_calls=0, app_calls_per_window=0,
    ), namespace="cliniko")


def cliniko_client(practice: Practice, **kwargs) -> ClinikoClient:
    """A Cliniko client for the practice's key (decrypted only here, never logged)."""
    return ClinikoClient(
        crypto.decrypt(practice.cliniko_api_key_encrypted) or "",
        current_app.config["CLINIKO_USER_AGENT"],
        api_url=current_app.config.get("CLINIKO_API_URL"),
        budget=cliniko_budget(),
        **kwargs,
    )


def test_cliniko(practice: Practice) -> ConnectionInfo:
    """Read /settings and /businesses with the practice's key (raises the client's typed errors)."""
    return cliniko_client(practice, max_retries=1).test_connection()


test_cliniko.__test__ = False  # not a pytest test


def active_connection(practice: Practice) -> XeroConnection | None:
    """The practice's active Xero connection (the first, when several)."""
    return db.session.scalar(
        select(XeroConnection)
        .where(XeroConnection.practice_id == practice.id, XeroConnection.status == "active")
        .order_by(XeroConnection.id)
    )


def _account(connection: XeroConnection, code: str) -> XeroAccount:
    account = db.session.scalar(
        select(XeroAccount).where(XeroAccount.connection_id == connection.id, XeroAccount.code == code)
    )
    if account is None:
        raise PracticeError(f"Xero has no account with code {code!r} in {connection.tenant_name}.")
    if account.status != "ACTIVE":
        raise PracticeError(f"Account {code} ({account.name}) is archived in Xero; choose an active one.")
    return account


DEFAULT_KEYS = ("sales_account", "payment_account", "rounding_account", "tax_exempt")
REVENUE_TYPES = ("REVENUE", "SALES", "OTHERINCOME")


def check_defaults(connection: XeroConnection, *, sales_account: str | None, payment_account: str | None,
                   rounding_account: str | None = None, tax_exempt: str | None = None) -> None:
    """Check each code given against the organisation's lists (PracticeError saying what is wrong)."""
    if sales_account:
        sales = _account(connection, sales_account)
        if sales.type not in REVENUE_TYPES:
            raise PracticeError(f"Account {sales_account} ({sales.name}) is a {sales.type} account; "
                                "choose a revenue account for sales.")
    if payment_account:
        payment = _account(connection, payment_account)
        if payment.type != "BANK" and not payment.enable_payments_to_account:
            raise PracticeError(f"Account {payment_account} ({payment.name}) cannot take payments: choose a bank "
                                "account or one with 'Enable payments to this account' ticked in Xero.")
    if rounding_account:
        _account(connection, rounding_account)
    if tax_exempt:
        rate = db.session.scalar(select(XeroTaxRate).where(
            XeroTaxRate.connection_id == connection.id, XeroTaxRate.tax_type == tax_exempt))
        if rate is None or rate.status != "ACTIVE":
            raise PracticeError(f"Xero has no active tax rate {tax_exempt!r} in {connection.tenant_name}.")


def set_defaults(practice: Practice, user: User | None, *, sales_account: str, payment_account: str,
                 rounding_account: str | None = None, tax_exempt: str | None = None) -> dict:
    """Check the codes against the organisation's lists and store them in the practice's settings."""
    connection = active_connection(practice)
    if connection is None:
        raise PracticeError("Connect the practice to Xero first: the accounts are checked against its lists.")
    if not sales_account or not payment_account:
        raise PracticeError("Choose a default sales account and a default payment account.")
    check_defaults(connection, sales_account=sales_account, payment_account=payment_account,
                   rounding_account=rounding_account, tax_exempt=tax_exempt)
    chosen = {"sales_account": sales_account, "payment_account": payment_account,
              "rounding_account": rounding_account, "tax_exempt": tax_exempt}
    settings = dict(practice.settings or {})
    settings.update({k: v for k, v in chosen.items() if v})
    practice.settings = settings
    record("practice.defaults", user=user, object_type="practice", object_id=practice.id,
           practice_id=practice.id, details=chosen)
    return chosen


def set_organisation_defaults(practice: Practice, connection: XeroConnection, user: User | None, *,
                              sales_account: str | None = None, payment_account: str | None = None,
                              rounding_account: str | None = None, tax_exempt: str | None = None) -> dict:
    """One organisation's own default accounts and tax-exempt rate (`xero_connections.settings`), checked
    against that organisation's lists; a blank one falls back to the practice's. Audited; the caller commits.
    Returns {key: [before, after]} of what changed."""
    if connection.practice_id != practice.id or connection.status == "revoked":
        raise PracticeError("That Xero organisation is not connected to this practice.")
    chosen = {"sales_account": sales_account or None, "payment_account": payment_account or None,
              "rounding_account": rounding_account or None, "tax_exempt": tax_exempt or None}
    check_defaults(connection, **chosen)
    before = {k: (connection.settings or {}).get(k) or None for k in DEFAULT_KEYS}
    changed = {k: [before[k], chosen[k]] for k in DEFAULT_KEYS if before[k] != chosen[k]}
    if not changed:
        return changed
    settings = {k: v for k, v in (connection.settings or {}).items() if k not in DEFAULT_KEYS}
    settings.update({k: v for k, v in chosen.items() if v})
    connection.settings = settings
    record("organisation.defaults", user=user, object_type="xero_connection", object_id=connection.id,
           practice_id=practice.id, details={"organisation": connection.tenant_name, "changed": changed})
    return changed


def organisation_default_problems(practice: Practice, connection: XeroConnection) -> list[str]:
    """The practice's default accounts an organisation falls back to but cannot use (not in its lists, archived,
    or of the wrong kind): each needs a choice of the organisation's own."""
    own = connection.settings or {}
    inherited = {k: (practice.settings or {}).get(k) for k in DEFAULT_KEYS if not own.get(k)}
    problems = []
    for key, code in inherited.items():
        if not code:
            continue
        try:
            check_defaults(connection, **{k: (code if k == key else None) for k in DEFAULT_KEYS})
        except PracticeError as exc:
            label = key.replace("_", " ").replace("tax exempt", "tax-exempt rate")
            problems.append(f"The practice's {label} {code} cannot be used here: {exc} Choose one for this "
                            "organisation.")
    return problems


def enable(practice: Practice, user: User | None) -> None:
    """Turn sync on; refused until Xero is connected and the default accounts are chosen (as Cliniko does)."""
    missing = [label for key, label in (("sales_account", "a default sales account"),
                                        ("payment_account", "a default payment account"))
               if not (practice.settings or {}).get(key)]
    if active_connection(practice) is None:
        missing.insert(0, "an active Xero connection")
    if missing:
        raise PracticeError("The integration will not work until you choose " + " and ".join(missing) + ".")
    practice.sync_enabled = True
    record("practice.enable", user=user, object_type="practice", object_id=practice.id, practice_id=practice.id)


def find(slug: str) -> Practice:
    """The practice with this slug, or PracticeError."""
    practice = db.session.scalar(select(Practice).where(Practice.slug == slug))
    if practice is None:
        raise PracticeError(f"No practice with slug {slug!r}.")
    return practice
