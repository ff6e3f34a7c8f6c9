"""Connect and disconnect Xero: the OAuth 2.0 authorization-code flow (SPEC §6)."""

from __future__ import annotations

import hmac
import json
import logging
import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from webapp import crypto
from webapp.access import practice_in_scope
from webapp.audit import record
from webapp.clients.errors import ClientError
from webapp.clients.xero_auth import Tenant, TokenSet
from webapp.extensions import db
from webapp.models import XeroConnection
from webapp.practices import active_connection
from webapp.redis_conn import redis_client
from webapp.sync.routing import reroute_connection
from webapp.xero.connections import disconnect, refresh_reference_data, save_connection
from webapp.xero.identity import identity

logger = logging.getLogger(__name__)
bp = Blueprint("xero", __name__)

STATE_KEY = "xero_oauth"
PENDING_TTL = 600  # seconds a token set waits for the organisation choice


def _practice_page(practice_id: int):
    return redirect(url_for("practices.detail", practice_id=practice_id))


@bp.route("/practices/<int:practice_id>/xero/connect")
@login_required
def connect(practice_id: int):
    """Start the consent flow with a random state bound to this session and practice."""
    practice = practice_in_scope(practice_id, admin=True)
    try:
        ident = identity()
    except ClientError as exc:
        flash(str(exc), "error")
        return _practice_page(practice.id)
    state = secrets.token_urlsafe(32)
    session[STATE_KEY] = {"state": state, "practice_id": practice.id}
    return redirect(ident.authorization_url(state))


def _take_state() -> dict:
    """Pop the state this session started with; refuse a mismatch, a missing one or a replay."""
    expected = session.pop(STATE_KEY, None)
    given = request.args.get("state", "")
    if not expected or not hmac.compare_digest(str(expected.get("state")), given):
        abort(400, "This Xero sign-in did not start here or has already been used. Start again from the practice page.")
    # Signed cookies can be replayed: remember used states server-side too.
    if not redis_client().set(f"xero:state-used:{given}", 1, nx=True, ex=3600):
        abort(400, "This Xero sign-in has already been used. Start again from the practice page.")
    return expected


@bp.route("/xero/callback")
@login_required
def callback():
    """Exchange the code, read /connections, save or ask which organisation."""
    bound = _take_state()
    practice = practice_in_scope(int(bound["practice_id"]), admin=True)
    if request.args.get("error"):
        flash(f"Xero did not connect: {request.args.get('error_description') or request.args['error']}.", "error")
        return _practice_page(practice.id)
    code = request.args.get("code")
    if not code:
        abort(400, "Xero sent no authorization code.")
    ident = identity()
    try:
        tokens = ident.exchange_code(code)
        tenants = [t for t in ident.connections(tokens.access_token) if t.tenant_type == "ORGANISATION"]
    except ClientError as exc:
        flash(f"Xero did not connect: {exc}", "error")
        return _practice_page(practice.id)
    if not tenants:
        flash("Xero connected no organisation. Choose one on Xero's consent page.", "error")
        return _practice_page(practice.id)
    if len(tenants) == 1:
        return _finish(practice, tenants[0], tokens, tenants)
    pending_id = secrets.token_urlsafe(24)
    payload = {
        "practice_id": practice.id,
        "tokens": {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                   "expires_at": tokens.expires_at.isoformat(), "scope": tokens.scope},
        "tenants": [t.__dict__ for t in tenants],
    }
    redis_client().set(f"xero:pending:{pending_id}", crypto.encrypt(json.dumps(payload)), ex=PENDING_TTL)
    session["xero_pending"] = pending_id
    # "Connect another organisation": those this practice already has are marked, and a new one is preselected.
    connected = set(db.session.scalars(select(XeroConnection.tenant_id).where(
        XeroConnection.practice_id == practice.id, XeroConnection.status == "active")))
    preselected = next((t.tenant_id for t in tenants if t.tenant_id not in connected), tenants[0].tenant_id)
    return render_template("xero/choose.html", practice=practice, tenants=tenants, connected=connected,
                           preselected=preselected)


@bp.route("/xero/choose", methods=["POST"])
@login_required
def choose():
    """The admin picked one of several organisations."""
    from datetime import datetime

    pending_id = session.pop("xero_pending", None)
    raw = redis_client().getdel(f"xero:pending:{pending_id}") if pending_id else None
    if raw is None:
        abort(400, "The organisation choice expired. Connect to Xero again.")
    payload = json.loads(crypto.decrypt(raw.decode()))
    practice = practice_in_scope(int(payload["practice_id"]), admin=True)
    tenants = [Tenant(**t) for t in payload["tenants"]]
    chosen = next((t for t in tenants if t.tenant_id == request.form.get("tenant_id")), None)
    if chosen is None:
        abort(400, "Choose one of the organisations listed.")
    t = payload["tokens"]
    tokens = TokenSet(t["access_token"], t["refresh_token"], datetime.fromisoformat(t["expires_at"]), t["scope"])
    return _finish(practice, chosen, tokens, tenants)


def _finish(practice, tenant: Tenant, tokens: TokenSet, tenants: list[Tenant]):
    connection = save_connection(practice, tenant, tokens, current_user)
    db.session.commit()
    from webapp.sync.requeue import requeue_fixable

    requeued = requeue_fixable(practice.id, current_user, categories=("auth",))
    if requeued:
        flash(f"{requeued} rows that failed while Xero refused access were re-queued.", "info")
    # Organisations granted in this same consent but not chosen should not stay connected;
    # connections another practice uses (or from an earlier consent) are left alone.
    in_use = set(db.session.scalars(select(XeroConnection.connection_id).where(XeroConnection.status == "active")))
    for other in tenants:
        if (other.tenant_id != tenant.tenant_id and other.connection_id not in in_use
                and other.auth_event_id and other.auth_event_id == tenant.auth_event_id):
            try:
                identity().delete_connection(tokens.access_token, other.connection_id)
            except ClientError as exc:
                logger.warning("could not remove unchosen connection %s: %s", other.connection_id, exc)
    try:
        counts = refresh_reference_data(connection)
        db.session.commit()
        flash(f"Connected to {tenant.tenant_name}. Read {counts['accounts']} accounts, {counts['tax_rates']} "
              f"tax rates and {counts['tracking_options']} tracking options.", "info")
    except ClientError as exc:
        db.session.rollback()
        flash(f"Connected to {tenant.tenant_name}, but reading its accounts failed: {exc}", "error")
    return _practice_page(practice.id)


def _practice_connection(practice_id: int, connection_id: int):
    """The practice (admin, in scope) and its connection; 404 for another practice's connection."""
    practice = practice_in_scope(practice_id, admin=True)
    connection = db.session.get(XeroConnection, connection_id)
    if connection is None or connection.practice_id != practice.id:
        abort(404)
    return practice, connection


@bp.route("/practices/<int:practice_id>/xero/<int:connection_id>/disconnect", methods=["POST"])
@login_required
def disconnect_view(practice_id: int, connection_id: int):
    """Delete the connection at Xero, revoke the token, wipe the tokens."""
    practice, connection = _practice_connection(practice_id, connection_id)
    problems = disconnect(connection, current_user)
    # Its rows not in Xero yet go where their businesses route now (the default organisation, if any).
    moved = reroute_connection(connection)
    if moved.total:
        record("routing.reroute", user=current_user, object_type="xero_connection", object_id=connection.id,
               practice_id=practice.id, details={"moved": moved.__dict__})
    if practice.sync_enabled and active_connection(practice) is None:
        practice.sync_enabled = False  # nothing to send to: pause until reconnected
        record("practice.pause", user=current_user, object_type="practice", object_id=practice.id,
               practice_id=practice.id, details={"reason": "Xero disconnected"})
    db.session.commit()
    if problems:
        flash("Disconnected here; " + " ".join(problems), "error")
    else:
        flash(f"Disconnected from {connection.tenant_name}. Sync is paused until Xero is connected again."
              if not practice.sync_enabled else f"Disconnected from {connection.tenant_name}.", "info")
    return _practice_page(practice.id)


@bp.route("/practices/<int:practice_id>/xero/<int:connection_id>/refresh", methods=["POST"])
@login_required
def refresh_reference(practice_id: int, connection_id: int):
    """Re-read accounts, tax rates and tracking options from Xero."""
    practice, connection = _practice_connection(practice_id, connection_id)
    try:
        counts = refresh_reference_data(connection)
        record("xero.lists_refresh", user=current_user, object_type="xero_connection", object_id=connection.id,
               practice_id=practice.id, details=counts)
        db.session.commit()
        flash(f"Read {counts['accounts']} accounts, {counts['tax_rates']} tax rates and "
              f"{counts['tracking_options']} tracking options from Xero.", "info")
    except Exception as exc:
        db.session.rollback()
        flash(f"Could not read from Xero: {exc}", "error")
    return _practice_page(practice.id)
