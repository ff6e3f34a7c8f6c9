"""OAuth 2.0 grants for the identity server: codes, rotating refresh tokens, access tokens, connections."""

import base64
import datetime as dt
import json
import logging
import secrets
import uuid

from sandbox.xero.dates import timestamp_string

logger = logging.getLogger(__name__)


class OAuthError(Exception):
    """An OAuth error to report as `{"error": code}` with an HTTP status."""

    def __init__(self, error: str, status: int = 400, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.description = description


class BearerError(Exception):
    """A rejected Bearer token: `detail` is Xero's Detail text, status 401."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt_like(payload: dict) -> str:
    header = {"alg": "RS256", "kid": "sandbox", "typ": "JWT"}
    return ".".join(
        [
            _b64(json.dumps(header).encode()),
            _b64(json.dumps(payload, separators=(",", ":")).encode()),
            _b64(secrets.token_bytes(32)),
        ]
    )


def redirect_allowed(client: dict, uri: str) -> bool:
    """A registered redirect URI, or any localhost one when the client registered none."""
    if not uri:
        return False
    registered = client.get("redirect_uris") or []
    if registered:
        return uri in registered
    for prefix in ("http://localhost", "http://127.0.0.1"):
        if uri.startswith(prefix) and (len(uri) == len(prefix) or uri[len(prefix)] in ":/?"):
            return True
    return False


class Identity:
    """Operations on the identity part of the store (callers hold no lock; we take the store's)."""

    def __init__(self, store, settings, clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    @property
    def data(self) -> dict:
        """The identity section of the state."""
        return self.store.identity

    # -- clients and users ----------------------------------------------------------------------
    def client(self, client_id: str | None) -> dict | None:
        """A registered client app."""
        return self.data["clients"].get(client_id or "")

    def authenticate_client(self, client_id: str | None, secret: str | None) -> dict:
        """Check client credentials; OAuthError invalid_client (401) when wrong."""
        client = self.client(client_id)
        if client is None or not secrets.compare_digest(str(secret or ""), client["secret"]):
            raise OAuthError("invalid_client", 401)
        return client

    def user_by_login(self, email: str, password: str) -> str | None:
        """The user id for these credentials, or None."""
        for user_id, user in self.data["users"].items():
            if user["email"].lower() == (email or "").strip().lower() and secrets.compare_digest(
                user["password"], password or ""
            ):
                return user_id
        return None

    def default_user(self) -> str:
        """The first user (used by auto consent)."""
        return next(iter(self.data["users"]))

    def user(self, user_id: str) -> dict:
        """A user record."""
        return self.data["users"][user_id]

    def start_login(self, user_id: str) -> str:
        """A short-lived ticket standing for a signed-in user across the consent form."""
        ticket = secrets.token_urlsafe(24)
        with self.store.lock:
            self.data["logins"][ticket] = {"user_id": user_id, "expires": self.clock.now() + 900}
        return ticket

    def login_user(self, ticket: str | None) -> str | None:
        """The user a login ticket stands for, if still valid."""
        login = self.data["logins"].get(ticket or "")
        if login and login["expires"] > self.clock.now():
            return login["user_id"]
        return None

    # -- consent and codes ----------------------------------------------------------------------
    def consent(self, client_id: str, user_id: str, tenant_ids: list[str], scope: str, redirect_uri: str) -> str:
        """Record consent: connect the chosen tenants and return an authorization code."""
        now = self.clock.now()
        auth_event_id = str(uuid.uuid4())
        with self.store.lock:
            for tenant_id in tenant_ids:
                self._connect(client_id, user_id, tenant_id, auth_event_id, now)
            code = secrets.token_urlsafe(32)
            self.data["codes"][code] = {
                "client_id": client_id,
                "user_id": user_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "auth_event_id": auth_event_id,
                "expires": now + self.settings.code_seconds,
                "used": False,
            }
            self.store.mark_dirty()
        return code

    def _connect(self, client_id: str, user_id: str, tenant_id: str, auth_event_id: str, now: float) -> None:
        for connection in self.data["connections"].values():
            if (connection["client_id"], connection["user_id"], connection["tenantId"]) == (
                client_id,
                user_id,
                tenant_id,
            ):
                connection["authEventId"] = auth_event_id
                connection["updated"] = now
                return
        org = self.store.org(tenant_id)
        connection_id = str(uuid.uuid4())
        self.data["connections"][connection_id] = {
            "id": connection_id,
            "client_id": client_id,
            "user_id": user_id,
            "tenantId": tenant_id,
            "tenantName": org.name if org else tenant_id,
            "tenantType": "ORGANISATION",
            "authEventId": auth_event_id,
            "created": now,
            "updated": now,
        }

    def exchange_code(self, client_id: str, code: str | None, redirect_uri: str | None) -> dict:
        """authorization_code grant: a code works once, with its own redirect_uri, before expiry."""
        now = self.clock.now()
        with self.store.lock:
            record = self.data["codes"].get(code or "")
            if record is None or record["client_id"] != client_id:
                raise OAuthError("invalid_grant")
            if record["used"] or record["expires"] < now:
                raise OAuthError("invalid_grant")
            if redirect_uri != record["redirect_uri"]:
                raise OAuthError("invalid_grant")
            record["used"] = True
            grant_id = str(uuid.uuid4())
            self.data["grants"][grant_id] = {
                "client_id": client_id,
                "user_id": record["user_id"],
                "scope": record["scope"],
                "auth_event_id": record["auth_event_id"],
                "created": now,
                "revoked": False,
            }
            return self._issue(grant_id, now)

    def refresh(self, client_id: str, refresh_token: str | None) -> dict:
        """refresh_token grant with rotation, a 30-minute grace for the previous token and 60-day expiry."""
        now = self.clock.now()
        with self.store.lock:
            record = self.data["refresh_tokens"].get(refresh_token or "")
            if record is None:
                raise OAuthError("invalid_grant")
            grant = self.data["grants"].get(record["grant_id"])
            if grant is None or grant["revoked"] or grant["client_id"] != client_id:
                raise OAuthError("invalid_grant")
            if record["rotated_at"] is None:
                if now - record["issued"] > self.settings.refresh_idle_seconds:
                    raise OAuthError("invalid_grant")
                tokens = self._issue(record["grant_id"], now)
                record["rotated_at"] = now
                record["successor"] = tokens["refresh_token"]
                return tokens
            if now - record["rotated_at"] > self.settings.refresh_grace_seconds:
                raise OAuthError("invalid_grant")
            # Within the grace period the old token may be used again: hand back the current head of
            # the rotation chain with a fresh access token, so a lost response can be recovered.
            head = record["successor"]
            while self.data["refresh_tokens"][head]["successor"]:
                head = self.data["refresh_tokens"][head]["successor"]
            tokens = self._issue(record["grant_id"], now, refresh_token=head)
            return tokens

    def _issue(self, grant_id: str, now: float, refresh_token: str | None = None) -> dict:
        grant = self.data["grants"][grant_id]
        expires = now + self.settings.access_token_seconds
        access = _jwt_like(
            {
                "nbf": int(now),
                "exp": int(expires),
                "iss": "https://identity.xero.com",
                "aud": "https://identity.xero.com/resources",
                "client_id": grant["client_id"],
                "sub": grant["user_id"],
                "xero_userid": grant["user_id"],
                "authentication_event_id": grant["auth_event_id"],
                "jti": uuid.uuid4().hex,
                "scope": grant["scope"].split(),
            }
        )
        self.data["access_tokens"][access] = {"grant_id": grant_id, "expires": expires}
        if refresh_token is None:
            refresh_token = secrets.token_hex(32)
            self.data["refresh_tokens"][refresh_token] = {
                "grant_id": grant_id,
                "issued": now,
                "rotated_at": None,
                "successor": None,
            }
        self._forget_expired(now)
        self.store.mark_dirty()
        result = {
            "access_token": access,
            "expires_in": self.settings.access_token_seconds,
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "scope": grant["scope"],
        }
        if "openid" in grant["scope"].split():
            user = self.data["users"][grant["user_id"]]
            result["id_token"] = _jwt_like(
                {
                    "nbf": int(now),
                    "exp": int(now) + 300,
                    "iss": "https://identity.xero.com",
                    "aud": grant["client_id"],
                    "sub": grant["user_id"],
                    "email": user["email"],
                    "given_name": user["name"].split()[0],
                    "family_name": user["name"].split()[-1],
                    "xero_userid": grant["user_id"],
                    "global_session_id": grant["auth_event_id"],
                }
            )
        return result

    def _forget_expired(self, now: float) -> None:
        tokens = self.data["access_tokens"]
        if len(tokens) > 2000:
            for token in [t for t, rec in tokens.items() if rec["expires"] < now - 3600]:
                del tokens[token]

    def revoke(self, client_id: str, token: str | None) -> None:
        """Revocation: kill the grant behind a refresh (or access) token and the user's connections."""
        with self.store.lock:
            record = self.data["refresh_tokens"].get(token or "") or self.data["access_tokens"].get(token or "")
            if record is None:
                return
            grant = self.data["grants"].get(record["grant_id"])
            if grant is None or grant["client_id"] != client_id:
                return
            for other in self.data["grants"].values():
                if other["client_id"] == client_id and other["user_id"] == grant["user_id"]:
                    other["revoked"] = True
            for connection_id in [
                cid
                for cid, c in self.data["connections"].items()
                if c["client_id"] == client_id and c["user_id"] == grant["user_id"]
            ]:
                del self.data["connections"][connection_id]
            self.store.mark_dirty()

    # -- bearer tokens and connections ----------------------------------------------------------
    def bearer(self, authorization: str | None) -> dict:
        """Resolve an `Authorization: Bearer …` header to its grant; BearerError when not usable."""
        if not authorization or not authorization.startswith("Bearer "):
            raise BearerError("AuthenticationUnsuccessful")
        token = authorization[len("Bearer ") :].strip()
        record = self.data["access_tokens"].get(token)
        if record is None:
            raise BearerError("AuthenticationUnsuccessful")
        grant = self.data["grants"].get(record["grant_id"])
        if grant is None or grant["revoked"]:
            raise BearerError("AuthenticationUnsuccessful")
        if record["expires"] <= self.clock.now():
            expired = timestamp_string(int(record["expires"] * 1000))
            raise BearerError(f"TokenExpired: token expired at {expired}")
        return grant

    def connections(self, grant: dict) -> list[dict]:
        """The user's connections for this client app, in /connections form."""
        with self.store.lock:
            rows = [
                c
                for c in self.data["connections"].values()
                if c["client_id"] == grant["client_id"] and c["user_id"] == grant["user_id"]
            ]
        return [_connection_view(c) for c in sorted(rows, key=lambda c: c["created"])]

    def connected(self, grant: dict, tenant_id: str) -> bool:
        """Whether the grant's user connected this tenant to the client app."""
        tenant_id = (tenant_id or "").strip().lower()
        return any(
            c["tenantId"] == tenant_id and c["client_id"] == grant["client_id"] and c["user_id"] == grant["user_id"]
            for c in list(self.data["connections"].values())
        )

    def disconnect(self, grant: dict, connection_id: str) -> bool:
        """DELETE /connections/{id}: True when removed, False when not found."""
        with self.store.lock:
            connection = self.data["connections"].get(connection_id)
            if connection is None or (connection["client_id"], connection["user_id"]) != (
                grant["client_id"],
                grant["user_id"],
            ):
                return False
            del self.data["connections"][connection_id]
            self.store.mark_dirty()
            return True

    def counts(self) -> dict:
        """Token and connection counts for /_sandbox/state."""
        return {
            "grants": len(self.data["grants"]),
            "refresh_tokens": len(self.data["refresh_tokens"]),
            "access_tokens": len(self.data["access_tokens"]),
            "connections": [
                {
                    "id": c["id"],
                    "tenantId": c["tenantId"],
                    "tenantName": c["tenantName"],
                    "client_id": c["client_id"],
                }
                for c in self.data["connections"].values()
            ],
        }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0")


def _connection_view(connection: dict) -> dict:
    return {
        "id": connection["id"],
        "authEventId": connection["authEventId"],
        "tenantId": connection["tenantId"],
        "tenantType": connection["tenantType"],
        "tenantName": connection["tenantName"],
        "createdDateUtc": _iso(connection["created"]),
        "updatedDateUtc": _iso(connection["updated"]),
    }
