"""Access tokens for a connection, refreshed by one process at a time (SPEC §6).

The refresh runs under a Postgres row lock on the connection (SELECT … FOR UPDATE) in its own
short transaction; after taking the lock the row is re-read, so a process that waited finds the
token another one just refreshed and makes no call. The rotated refresh token is committed before
the new access token is handed out.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from webapp import crypto
from webapp.clients.xero_auth import InvalidGrant, TokenSet
from webapp.extensions import db
from webapp.models import AuditEntry, XeroConnection, utcnow
from webapp.xero.identity import identity

logger = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(seconds=60)


class ConnectionUnavailable(Exception):
    """The connection cannot be used (needs reconnect, revoked, no tokens); the message says why."""


def store_tokens(connection: XeroConnection, tokens: TokenSet) -> None:
    """Encrypt and set the tokens on the row (caller commits)."""
    connection.access_token_encrypted = crypto.encrypt(tokens.access_token)
    if tokens.refresh_token:
        connection.refresh_token_encrypted = crypto.encrypt(tokens.refresh_token)
    connection.access_expires_at = tokens.expires_at
    if tokens.scope:
        connection.scopes = tokens.scope
    connection.last_refreshed_at = utcnow()
    connection.last_error = None


def _usable(connection: XeroConnection) -> None:
    if connection.status != "active":
        raise ConnectionUnavailable(
            f"The Xero connection to {connection.tenant_name or connection.tenant_id} is "
            f"{connection.status.replace('_', ' ')}; reconnect it on the practice page."
        )
    if not connection.refresh_token_encrypted:
        raise ConnectionUnavailable("The Xero connection has no tokens; connect it again.")


def access_token(connection_id: int, force: bool = False) -> str:
    """A valid access token for the connection, refreshing it first when it expires within 60 s."""
    # Re-read every time (one query): another process may have refreshed or revoked it.
    connection = db.session.get(XeroConnection, connection_id, populate_existing=True)
    if connection is None:
        raise ConnectionUnavailable(f"Xero connection {connection_id} does not exist.")
    _usable(connection)
    if not force and connection.access_expires_at and connection.access_expires_at - utcnow() > REFRESH_MARGIN:
        return crypto.decrypt(connection.access_token_encrypted)
    return _refresh_locked(connection_id, force=force)


def _refresh_locked(connection_id: int, force: bool) -> str:
    refused: str | None = None
    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        connection = session.get(XeroConnection, connection_id, with_for_update=True, populate_existing=True)
        _usable(connection)
        if not force and connection.access_expires_at and connection.access_expires_at - utcnow() > REFRESH_MARGIN:
            # Another process refreshed while we waited for the lock.
            return crypto.decrypt(connection.access_token_encrypted)
        try:
            tokens = identity().refresh(crypto.decrypt(connection.refresh_token_encrypted))
        except InvalidGrant as exc:
            # Not retried: the grant is gone until someone reconnects. Committed with the block.
            refused = f"{exc.message}. Reconnect Xero for this practice."
            connection.status = "needs_reconnect"
            connection.last_error = refused
            connection.access_token_encrypted = None
            logger.warning("connection %s needs reconnect: %s", connection.id, exc.message)
            _audit_needs_reconnect(session, connection)
        else:
            store_tokens(connection, tokens)
            logger.info("refreshed Xero token of connection %s", connection.id)
    if refused:
        raise ConnectionUnavailable(refused)
    # Committed (rotated refresh token saved) before the new access token is used.
    return tokens.access_token


def _audit_needs_reconnect(session: Session, connection: XeroConnection) -> None:
    session.add(AuditEntry(
        actor="system", action="xero.needs_reconnect", object_type="xero_connection",
        object_id=str(connection.id), practice_id=connection.practice_id,
        details={"reason": connection.last_error},
    ))
