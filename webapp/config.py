"""Settings read from the environment (SPEC §4), with one clear error for a missing required one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_XERO_SCOPES = (
    "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read"
)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it and says what to do."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, whether it is required, and how to parse it."""

    name: str
    default: str | None = None
    required: bool = False
    kind: type = str
    help: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", required=True, help="Postgres URL (postgres:// is accepted)"),
    Setting("REDIS_URL", required=True, help="Redis for RQ, rate budgets, locks, login throttling"),
    Setting("SECRET_KEY", required=True, help="Flask session signing key"),
    Setting("TOKEN_ENCRYPTION_KEYS", required=True, help="comma-separated Fernet keys; first encrypts"),
    Setting("XERO_CLIENT_ID", help="the Xero app's client id (required to connect)"),
    Setting("XERO_CLIENT_SECRET", help="the Xero app's client secret (required to connect)"),
    Setting("XERO_SCOPES", DEFAULT_XERO_SCOPES),
    Setting("XERO_AUTHORIZE_URL", "https://login.xero.com/identity/connect/authorize"),
    Setting("XERO_TOKEN_URL", "https://identity.xero.com/connect/token"),
    Setting("XERO_REVOKE_URL", "https://identity.xero.com/connect/revocation"),
    Setting("XERO_CONNECTIONS_URL", "https://api.xero.com/connections"),
    Setting("XERO_API_URL", "https://api.xero.com/api.xro/2.0"),
    Setting("XERO_REDIRECT_URI", help="OAuth callback; default {external base}/xero/callback"),
    Setting("XERO_RATE_WINDOW_SECONDS", "60", kind=float),
    Setting("XERO_CALLS_PER_WINDOW", "60", kind=int),
    Setting("XERO_MAX_CONCURRENT", "5", kind=int),
    Setting("XERO_DAILY_CALLS", "5000", kind=int),
    Setting("XERO_APP_CALLS_PER_WINDOW", "10000", kind=int),
    Setting("XERO_BATCH_SIZE", "50", kind=int),
    Setting("XERO_OVERLAP_CALLS", "1", kind=int,
            help="1: a push prepares its next batch while Xero answers the last (one call in flight); 0: in turn"),
    Setting("XERO_READ_TIMEOUT_SECONDS", "60", kind=float, help="how long to wait for Xero's answer"),
    Setting("CLINIKO_API_URL", help="overrides the base URL derived from the key's shard"),
    Setting("CLINIKO_USER_AGENT", required=True, help="sent on every Cliniko call; must contain an email"),
    Setting("CLINIKO_CALLS_PER_MINUTE", "200", kind=int),
    Setting("POLL_INTERVAL_SECONDS", "60", kind=int),
    Setting("SMTP_URL", help="smtp://host:port for alert emails; unset = alerts only in the UI"),
    Setting("ALERT_FROM", "alerts@localhost"),
    Setting("LOG_LEVEL", "INFO"),
    Setting("SENTRY_DSN"),
)


def normalise_database_url(url: str) -> str:
    """Accept Heroku's postgres:// and plain postgresql:// URLs; use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _parse(setting: Setting, raw: str):
    try:
        return setting.kind(raw)
    except ValueError:
        raise ConfigError(
            f"{setting.name} must be a {setting.kind.__name__}, got {raw!r}"
        ) from None


def load(environ: Mapping[str, str] | None = None, overrides: Mapping | None = None) -> dict:
    """Build the Flask config from the environment; overrides (tests) win and may fill required ones."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config: dict = {}
    for setting in SETTINGS:
        if setting.name in overrides:
            config[setting.name] = overrides[setting.name]
            continue
        raw = environ.get(setting.name) or setting.default
        if raw is None:
            if setting.required:
                hint = f" ({setting.help})" if setting.help else ""
                raise ConfigError(f"Missing required environment variable {setting.name}{hint}.")
            config[setting.name] = None
            continue
        config[setting.name] = _parse(setting, raw)
    if "@" not in (config["CLINIKO_USER_AGENT"] or ""):
        raise ConfigError("CLINIKO_USER_AGENT must contain a contact email, e.g. 'Clinic Sync (ops@example.com)'.")
    config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(config["DATABASE_URL"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
    config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"]
    config["RATELIMIT_STRATEGY"] = "fixed-window"
    config["RATELIMIT_HEADERS_ENABLED"] = True
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = environ.get("SESSION_COOKIE_SECURE", "1") != "0"
    config["REMEMBER_COOKIE_HTTPONLY"] = True
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    config["PERMANENT_SESSION_LIFETIME"] = 12 * 3600
    # Only send the session cookie when the session changed: with cookie sessions, refreshing it on
    # every response lets a concurrent request (a static file, a favicon) write back an older copy
    # over one that just stored, say, the OAuth state.
    config["SESSION_REFRESH_EACH_REQUEST"] = False
    config["WTF_CSRF_TIME_LIMIT"] = None
    config["LOGIN_ATTEMPTS_PER_IP"] = environ.get("LOGIN_ATTEMPTS_PER_IP", "20 per 5 minutes")
    config["LOGIN_ATTEMPTS_PER_ACCOUNT"] = environ.get("LOGIN_ATTEMPTS_PER_ACCOUNT", "5 per 5 minutes")
    config.update(overrides)
    if "SQLALCHEMY_DATABASE_URI" in overrides:
        config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(overrides["SQLALCHEMY_DATABASE_URI"])
    elif "DATABASE_URL" in overrides:
        config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(overrides["DATABASE_URL"])
    if "REDIS_URL" in overrides and "RATELIMIT_STORAGE_URI" not in overrides:
        config["RATELIMIT_STORAGE_URI"] = overrides["REDIS_URL"]
    return config
