"""Test and demo control endpoints under /_sandbox (state, reset, faults, clock, limits, lock dates, load)."""

import datetime as dt
import logging
import uuid

from flask import Blueprint, request

from sandbox.xero import fixtures
from sandbox.xero.accounting import contacts, documents, payments
from sandbox.xero.accounting.context import Ctx
from sandbox.xero.dates import parse_date
from sandbox.xero.money import dec
from sandbox.xero.responses import json_response
from sandbox.xero.service import current_sandbox
from sandbox.xero.state import Org

logger = logging.getLogger(__name__)

bp = Blueprint("xero_sandbox_control", __name__, url_prefix="/_sandbox")

LIMIT_KEYS = (
    "window_seconds",
    "minute_limit",
    "concurrent_limit",
    "day_limit",
    "starter_day_limit",
    "app_minute_limit",
    "day_seconds",
)


def _bad(message: str):
    return json_response({"error": message}, 400)


def _json() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _org(body: dict):
    sb = current_sandbox()
    tenant_id = body.get("tenant_id")
    return sb.store.org(tenant_id) if tenant_id else sb.store.default_org()


def _invoice_state(org, record: dict) -> dict:
    return {
        "InvoiceID": record["InvoiceID"],
        "InvoiceNumber": record.get("InvoiceNumber") or "",
        "Type": record["Type"],
        "Status": record["Status"],
        "Contact": (org.contacts.get(record.get("ContactID") or "") or {}).get("Name"),
        "Date": record.get("Date"),
        "Total": str(dec(record["Total"])),
        "AmountDue": str(dec(record["AmountDue"])),
        "AmountPaid": str(dec(record["AmountPaid"])),
        "payments": [
            {
                "PaymentID": p["PaymentID"],
                "Amount": p["Amount"],
                "Date": p["Date"],
                "Status": p["Status"],
                "Reference": p.get("Reference") or "",
                "AccountID": p["AccountID"],
            }
            for p in (org.payments.get(pid) for pid in record.get("PaymentIDs", []))
            if p is not None
        ],
    }


@bp.get("/state")
def state():
    """Counts, every invoice (number, total, status, payments), contacts, per-tenant call counts."""
    sb = current_sandbox()
    summary = request.args.get("summary", "").lower() in ("1", "true", "yes")
    orgs = []
    totals = {"contacts": 0, "invoices": 0, "credit_notes": 0, "payments": 0}
    with sb.store.lock:
        for org in sb.store.orgs.values():
            counts = {
                "contacts": len(org.contacts),
                "invoices": len(org.invoices),
                "credit_notes": len(org.credit_notes),
                "payments": sum(1 for p in org.payments.values() if p["Status"] == "AUTHORISED"),
                "payments_deleted": sum(1 for p in org.payments.values() if p["Status"] == "DELETED"),
            }
            for key in totals:
                totals[key] += counts[key]
            entry = {
                "tenant_id": org.tenant_id,
                "name": org.name,
                "tier": org.data.get("tier"),
                "day_limit": sb.limiter.day_limit(org),
                "period_lock_date": org.data.get("period_lock_date"),
                "end_of_year_lock_date": org.data.get("end_of_year_lock_date"),
                "counts": counts,
                "calls": sb.limiter.stats(org.tenant_id),
            }
            if not summary:
                entry["invoices"] = [_invoice_state(org, r) for r in org.invoices.values()]
                entry["credit_notes"] = [
                    {
                        "CreditNoteID": r["CreditNoteID"],
                        "CreditNoteNumber": r.get("CreditNoteNumber") or "",
                        "Status": r["Status"],
                        "Total": str(dec(r["Total"])),
                        "RemainingCredit": str(dec(r["AmountDue"])),
                    }
                    for r in org.credit_notes.values()
                ]
                entry["contacts"] = [
                    {
                        "ContactID": c["ContactID"],
                        "Name": c["Name"],
                        "ContactNumber": c.get("ContactNumber") or "",
                        "ContactStatus": c["ContactStatus"],
                        "EmailAddress": c.get("EmailAddress") or "",
                    }
                    for c in org.contacts.values()
                ]
            orgs.append(entry)
        identity = sb.identity.counts()
    return json_response(
        {
            "clock": sb.clock.describe(),
            "counts": totals,
            "organisations": orgs,
            "identity": identity,
            "limits": {key: getattr(sb.settings, key) for key in LIMIT_KEYS},
            "faults": sb.faults.describe(),
        }
    )


@bp.post("/reset")
def reset():
    """Back to the fixtures: no documents, tokens, counts, faults, keys or clock offset."""
    current_sandbox().reset()
    return json_response({"ok": True})


@bp.route("/faults", methods=["GET", "POST"])
def faults():
    """GET the fault settings, or POST new ones (replacing all; `{}` turns faults off)."""
    sb = current_sandbox()
    if request.method == "GET":
        return json_response(sb.faults.describe())
    try:
        return json_response(sb.faults.configure(_json()))
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))


@bp.route("/clock", methods=["GET", "POST"])
def clock():
    """Move the emulated clock: {"advance_seconds": n} | {"set": ISO or epoch} | {"freeze": bool} | {"reset": true}."""
    sb = current_sandbox()
    body = _json() if request.method == "POST" else {}
    try:
        if body.get("reset"):
            sb.clock.reset()
        if "freeze" in body:
            sb.clock.freeze(bool(body["freeze"]))
        if "set" in body:
            value = body["set"]
            if isinstance(value, int | float):
                sb.clock.set(float(value))
            else:
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=dt.UTC)
                sb.clock.set(parsed.timestamp())
        if "advance_seconds" in body:
            sb.clock.advance(float(body["advance_seconds"]))
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return json_response(sb.clock.describe())


@bp.post("/lock-dates")
def lock_dates():
    """Set or clear an organisation's period and end-of-year lock dates (YYYY-MM-DD or null)."""
    body = _json()
    org = _org(body)
    if org is None:
        return _bad("unknown tenant_id")
    sb = current_sandbox()
    with sb.store.lock:
        for key in ("period_lock_date", "end_of_year_lock_date"):
            if key in body:
                try:
                    org.data[key] = parse_date(body[key]).isoformat() if body[key] else None
                except ValueError:
                    return _bad(f"{key} must be YYYY-MM-DD or null")
        sb.store.mark_dirty()
        result = {key: org.data[key] for key in ("period_lock_date", "end_of_year_lock_date")}
    return json_response({"tenant_id": org.tenant_id, **result})


@bp.post("/limits")
def limits():
    """Change limits: any of LIMIT_KEYS, `tenants: {id: {tier, day_limit}}`, `reset_counts`."""
    sb = current_sandbox()
    body = _json()
    for key in LIMIT_KEYS:
        if key in body:
            current = getattr(sb.settings, key)
            setattr(sb.settings, key, type(current)(body[key]))
    for tenant_id, options in (body.get("tenants") or {}).items():
        org = sb.store.org(tenant_id)
        if org is None:
            return _bad(f"unknown tenant {tenant_id}")
        with sb.store.lock:
            if "tier" in options:
                org.data["tier"] = "starter" if str(options["tier"]).lower() == "starter" else "standard"
            if "day_limit" in options:
                org.data["day_limit"] = int(options["day_limit"]) if options["day_limit"] else None
            sb.store.mark_dirty()
    if body.get("reset_counts"):
        sb.limiter.reset()
    return json_response(
        {
            "limits": {key: getattr(sb.settings, key) for key in LIMIT_KEYS},
            "tenants": {
                org.tenant_id: {"tier": org.data.get("tier"), "day_limit": sb.limiter.day_limit(org)}
                for org in sb.store.orgs.values()
            },
        }
    )


@bp.post("/accounts")
def accounts():
    """Change an account by Code: {"tenant_id"?, "Code": "200", "Status"?, "EnablePaymentsToAccount"?}."""
    sb = current_sandbox()
    body = _json()
    org = _org(body)
    account = org.account(code=body.get("Code")) if org else None
    if account is None:
        return _bad("unknown account Code")
    with sb.store.lock:
        for key in ("Status", "EnablePaymentsToAccount", "Name", "TaxType"):
            if key in body:
                account[key] = body[key]
        account["UpdatedMs"] = sb.clock.now_ms()
        org.reindex()
        sb.store.mark_dirty()
    return json_response({"Code": account["Code"], "Status": account["Status"]})


@bp.post("/load")
def load():
    """Load data: {"snapshot": …} replaces everything; else contacts/invoices/payments through the rules."""
    sb = current_sandbox()
    body = _json()
    if "snapshot" in body:
        try:
            sb.store.restore(body["snapshot"])
        except (ValueError, KeyError, TypeError) as exc:
            return _bad(f"bad snapshot: {exc}")
        return json_response({"ok": True})
    org = _org(body)
    if org is None:
        return _bad("unknown tenant_id")
    ctx = Ctx(sb, org, "sandbox-load", 4)
    created = {"contacts": 0, "invoices": 0, "credit_notes": 0, "payments": 0}
    errors = []
    for raw in body.get("contacts") or []:
        _, problems = contacts.process(ctx, raw, None)
        created["contacts"] += not problems
        errors += [{"kind": "contact", "element": raw.get("Name"), "errors": problems}] if problems else []
    for key, kind in (("invoices", documents.INVOICE), ("credit_notes", documents.CREDIT_NOTE)):
        for raw in body.get(key) or []:
            _, problems = documents.process(ctx, kind, raw, None)
            created[key] += not problems
            errors += [{"kind": key, "element": raw.get(kind.number_field), "errors": problems}] if problems else []
    for raw in body.get("payments") or []:
        _, problems = payments.create(ctx, raw)
        created["payments"] += not problems
        errors += [{"kind": "payment", "element": raw.get("Reference"), "errors": problems}] if problems else []
    return json_response({"created": created, "errors": errors})


@bp.get("/export")
def export():
    """The whole state as a snapshot (what `load` with `snapshot` and --data files hold)."""
    return json_response(current_sandbox().store.snapshot())


@bp.post("/save")
def save():
    """Write the state to the data file now."""
    sb = current_sandbox()
    if not sb.settings.data_file:
        return _bad("no data file configured")
    sb.store.save_file()
    return json_response({"ok": True, "data_file": sb.settings.data_file})


@bp.post("/organisations")
def add_organisation():
    """Add an organisation (fixture chart of accounts, tax rates, tracking) and give it to a user.

    Body: {"name": "…", "tenant_id"?: uuid, "short_code"?: "…", "tier"?: "standard"|"starter",
    "user"?: {"email": "…", "password": "…", "name"?: "…"}}. The user is created when unknown (a
    password is then required); without "user" the organisation goes to the default (demo) user.
    """
    sb = current_sandbox()
    body = _json()
    name = str(body.get("name") or "").strip()
    if not name:
        return _bad("name is required")
    try:
        tenant_id = str(uuid.UUID(str(body["tenant_id"]))) if body.get("tenant_id") else str(uuid.uuid4())
    except ValueError:
        return _bad("tenant_id must be a UUID")
    user_body = body.get("user") or {}
    if not isinstance(user_body, dict):
        return _bad("user must be an object")
    email = str(user_body.get("email") or "").strip()
    with sb.store.lock:
        if sb.store.org(tenant_id) is not None:
            return _bad(f"tenant {tenant_id} already exists")
        users = sb.store.identity["users"]
        if email:
            user_id = next((uid for uid, u in users.items() if u["email"].lower() == email.lower()), None)
            if user_id is None:
                if not user_body.get("password"):
                    return _bad("password is required for a new user")
                user_id = fixtures._id("user", email.lower())
                users[user_id] = {"email": email, "password": str(user_body["password"]),
                                  "name": str(user_body.get("name") or "Sandbox User"), "tenant_ids": []}
        else:
            user_id = sb.identity.default_user()
        data = fixtures.organisation(tenant_id, name, str(body.get("short_code") or "!" + name[:5]),
                                     sb.clock.now_ms())
        if str(body.get("tier") or "").lower() == "starter":
            data["tier"] = "starter"
        sb.store.orgs[tenant_id] = Org(data)
        users[user_id]["tenant_ids"].append(tenant_id)
        sb.store.mark_dirty()
        email = users[user_id]["email"]
    return json_response({"tenant_id": tenant_id, "name": name, "user_id": user_id, "email": email}, 201)


@bp.get("/app-calls")
def app_calls():
    """The app-wide (per client app) call count of the current window: {client_id: {window, count, ...}}."""
    sb = current_sandbox()
    now = sb.clock.now()
    length = sb.settings.window_seconds
    out = {}
    with sb.limiter.lock:
        for client_id, (index, count) in sb.limiter.apps.items():
            current, ends = sb.limiter._window("app:" + client_id, length, now)
            out[client_id] = {"window": index, "count": count if index == current else 0,
                              "last_count": count, "current_window": current, "window_ends": ends}
    return json_response({"now": now, "window_seconds": length, "app_minute_limit": sb.settings.app_minute_limit,
                          "apps": out})
