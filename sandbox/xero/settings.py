"""Settings of one sandbox Xero instance (limits, lifetimes, client registration)."""

import dataclasses
import os


@dataclasses.dataclass
class Settings:
    """Everything create_app() can be told; defaults mirror Xero's published figures."""

    window_seconds: float = 60.0
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    redirect_uris: tuple[str, ...] = ()
    auto_consent: bool = False
    data_file: str | None = None
    seed: int = 0
    app_name: str = "Cliniko Xero Sync"
    # Rate limits (per tenant unless named app_).
    minute_limit: int = 60
    concurrent_limit: int = 5
    day_limit: int = 5000
    starter_day_limit: int = 1000
    app_minute_limit: int = 10000
    day_seconds: float = 86400.0
    # Request size (Xero: 3.5 MB per POST); the status is not documented, so it is a setting.
    max_body_bytes: int = 3_670_016
    body_too_large_status: int = 413
    # OAuth lifetimes.
    access_token_seconds: int = 1800
    refresh_grace_seconds: int = 1800
    refresh_idle_seconds: int = 60 * 86400
    code_seconds: int = 300
    # Idempotency-Key lifetime (~6 minutes).
    idempotency_ttl_seconds: float = 360.0
    # Faults: how long a "timeout" hangs.
    hang_seconds: float = 30.0
    # How often a dirty state is written to data_file.
    autosave_seconds: float = 1.0

    def consent_skipped(self) -> bool:
        """True when the authorize page should redirect straight back (option or env)."""
        return self.auto_consent or os.environ.get("XERO_SANDBOX_AUTO_CONSENT", "") == "1"


def make_settings(**options) -> Settings:
    """Build Settings from keyword options, refusing unknown names."""
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown sandbox Xero option(s): {', '.join(unknown)}")
    if "redirect_uris" in options:
        options["redirect_uris"] = tuple(options["redirect_uris"] or ())
    return Settings(**options)
