"""Xero identity over HTTP: OAuth 2.0 authorization-code flow, refresh, revocation, connections.

HTTP only (no Flask, no database). Tokens come back as `TokenSet`s; persisting them, encrypting
them and single-flight refresh live in `webapp.xero`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import InvalidGrantError as OAuthInvalidGrant
from oauthlib.oauth2 import OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from webapp.clients.errors import AuthError, ClientError, NetworkError, ServerError

logger = logging.getLogger(__name__)


class InvalidGrant(AuthError):
    """The refresh token (or code) is no longer valid: the connection needs reconnecting."""


class OAuthError(AuthError):
    """Xero identity refused the request for another OAuth reason (invalid_client, …)."""


@dataclass(frozen=True)
class TokenSet:
    """Tokens from one grant; `expires_at` is timezone-aware UTC."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scope: str

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when the access token has less than `seconds` left."""
        now = now or datetime.now(UTC)
        return self.expires_at - now < timedelta(seconds=seconds)


@dataclass(frozen=True)
class Tenant:
    """One entry of GET /connections."""

    connection_id: str
    tenant_id: str
    tenant_name: str
    tenant_type: str
    auth_event_id: str | None


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class XeroIdentity:
    """The Xero app's side of OAuth: build the consent URL, exchange codes, refresh, revoke."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        authorize_url: str,
        token_url: str,
        revoke_url: str,
        connections_url: str,
        redirect_uri: str,
        scopes: str,
        timeout: float = 20.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ClientError("XERO_CLIENT_ID and XERO_CLIENT_SECRET must be set to connect to Xero.")
        self.client_id = client_id
        self._auth = HTTPBasicAuth(client_id, client_secret)
        self.authorize_url = authorize_url
        self.token_url = token_url
        self.revoke_url = revoke_url
        self.connections_url = connections_url
        self.redirect_uri = redirect_uri
        self.scopes = scopes.split()
        self.timeout = timeout
        if all(_is_loopback_http(u) for u in (token_url, redirect_uri)):
            # oauthlib insists on https; the sandbox emulator on 127.0.0.1 is plain http.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

    def _session(self, state: str | None = None) -> OAuth2Session:
        return OAuth2Session(self.client_id, redirect_uri=self.redirect_uri, scope=self.scopes, state=state)

    def authorization_url(self, state: str) -> str:
        """The consent page URL carrying our `state`."""
        url, _ = self._session(state).authorization_url(self.authorize_url, state=state)
        return url

    def _token_call(self, fn, *args, **kwargs) -> TokenSet:
        try:
            token = fn(*args, auth=self._auth, timeout=self.timeout, **kwargs)
        except OAuthInvalidGrant as exc:
            raise InvalidGrant(f"Xero refused the grant: {exc.description or 'invalid_grant'}") from None
        except OAuth2Error as exc:
            raise OAuthError(f"Xero identity error: {exc.error} {exc.description or ''}".strip()) from None
        except requests.Timeout:
            raise NetworkError("Xero identity did not answer in time.") from None
        except requests.RequestException as exc:
            raise ServerError(f"Could not reach Xero identity: {type(exc).__name__}") from None
        except ValueError as exc:  # oauthlib's "Missing access token parameter" on a non-token body
            raise ServerError(f"Xero identity gave an unexpected answer: {exc}") from None
        expires_at = token.get("expires_at") or (time.time() + float(token.get("expires_in", 1800)))
        return TokenSet(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_at=datetime.fromtimestamp(float(expires_at), UTC),
            scope=" ".join(token.get("scope") or []) if isinstance(token.get("scope"), list)
            else str(token.get("scope") or ""),
        )

    def exchange_code(self, code: str) -> TokenSet:
        """Trade the callback's authorization code for tokens."""
        session = self._session()
        return self._token_call(session.fetch_token, self.token_url, code=code, include_client_id=False)

    def refresh(self, refresh_token: str) -> TokenSet:
        """Use a refresh token; Xero rotates it, so the caller must save the new one before use."""
        session = self._session()
        return self._token_call(session.refresh_token, self.token_url, refresh_token=refresh_token)

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token (and with it the user's connections)."""
        try:
            response = requests.post(
                self.revoke_url, data={"token": refresh_token}, auth=self._auth, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise ServerError(f"Could not reach Xero to revoke the token: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise ServerError(f"Xero revocation answered {response.status_code}", status=response.status_code)
        if response.status_code >= 400:
            logger.info("revocation answered %s (token already invalid)", response.status_code)

    def connections(self, access_token: str) -> list[Tenant]:
        """The organisations this token may reach."""
        response = self._identity_get(access_token)
        return [
            Tenant(
                connection_id=item["id"],
                tenant_id=item["tenantId"],
                tenant_name=item.get("tenantName") or "",
                tenant_type=item.get("tenantType") or "ORGANISATION",
                auth_event_id=item.get("authEventId"),
            )
            for item in response
        ]

    def _identity_get(self, access_token: str) -> list[dict]:
        try:
            response = requests.get(
                self.connections_url,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ServerError(f"Could not reach Xero connections: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise AuthError("Xero refused the access token when listing connections.", status=response.status_code)
        if response.status_code != 200:
            raise ServerError(f"Xero connections answered {response.status_code}", status=response.status_code)
        return response.json()

    def delete_connection(self, access_token: str, connection_id: str) -> bool:
        """DELETE /connections/{id}; True when deleted, False when it was already gone (404)."""
        try:
            response = requests.delete(
                f"{self.connections_url.rstrip('/')}/{connection_id}",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ServerError(f"Could not reach Xero to disconnect: {type(exc).__name__}") from None
        if response.status_code == 404:
            return False
        if response.status_code in (401, 403):
            raise AuthError("Xero refused the access token when disconnecting.", status=response.status_code)
        if response.status_code >= 300:
            raise ServerError(f"Xero disconnect answered {response.status_code}", status=response.status_code)
        return True
