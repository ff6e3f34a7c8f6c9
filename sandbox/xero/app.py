"""Application factory of the sandbox Xero emulator."""

import atexit
import logging

from flask import Flask

from sandbox.xero import control, identity
from sandbox.xero.accounting import api_contacts, api_documents, api_payments, api_settings  # noqa: F401
from sandbox.xero.accounting.pipeline import bp as accounting_bp
from sandbox.xero.responses import json_response
from sandbox.xero.service import Sandbox
from sandbox.xero.settings import make_settings

logger = logging.getLogger(__name__)


def create_app(
    window_seconds: float = 60,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",  # noqa: S107 - the sandbox's documented default
    redirect_uris=(),
    auto_consent: bool = False,
    data_file: str | None = None,
    seed: int = 0,
    **more,
) -> Flask:
    """Build the emulator as a Flask app; `more` takes any other Settings field (limits, lifetimes…)."""
    settings = make_settings(
        window_seconds=float(window_seconds),
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        auto_consent=auto_consent,
        data_file=data_file,
        seed=seed,
        **more,
    )
    app = Flask(__name__)
    app.config["JSON_SORT_KEYS"] = False
    sandbox = Sandbox(settings)
    app.extensions["xero_sandbox"] = sandbox
    app.register_blueprint(identity.bp)
    app.register_blueprint(accounting_bp)
    app.register_blueprint(control.bp)

    @app.get("/")
    def index():
        """A short description of where things are."""
        return json_response(
            {
                "service": "sandbox Xero",
                "authorize": "/identity/connect/authorize",
                "token": "/connect/token",
                "revocation": "/connect/revocation",
                "connections": "/connections",
                "accounting": "/api.xro/2.0/",
                "control": "/_sandbox/state",
            }
        )

    if settings.data_file:
        sandbox.store.start_autosave()
        atexit.register(sandbox.store.stop_autosave)
    logger.info("sandbox Xero ready (window %ss, client %s)", settings.window_seconds, settings.client_id)
    return app
