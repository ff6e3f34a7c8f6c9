"""The app's XeroIdentity built from config."""

from __future__ import annotations

from flask import current_app, url_for

from webapp.clients.xero_auth import XeroIdentity


def identity() -> XeroIdentity:
    """XeroIdentity for the current app (redirect URI from XERO_REDIRECT_URI or this site's callback)."""
    config = current_app.config
    redirect_uri = config.get("XERO_REDIRECT_URI") or url_for("xero.callback", _external=True)
    return XeroIdentity(
        config.get("XERO_CLIENT_ID") or "",
        config.get("XERO_CLIENT_SECRET") or "",
        authorize_url=config["XERO_AUTHORIZE_URL"],
        token_url=config["XERO_TOKEN_URL"],
        revoke_url=config["XERO_REVOKE_URL"],
        connections_url=config["XERO_CONNECTIONS_URL"],
        redirect_uri=redirect_uri,
        scopes=config["XERO_SCOPES"],
    )
