"""create_app(): the sandbox Cliniko API as a standalone Flask app."""

import logging

from flask import Flask, jsonify, request

from .auth import RateLimiter
from .clock import Clock
from .context import EXTENSION, Sandbox
from .faults import Faults
from .generator import generate
from .state import SandboxState

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sandbox-key-au1"


def create_app(
    api_key: str = DEFAULT_API_KEY,
    seed: int = 0,
    patients: int = 300,
    invoices: int = 2000,
    calls_per_minute: int = 200,
    data_file: str | None = None,
    **more,
) -> Flask:
    """Build the emulator; extra options: now (ISO or datetime), frozen, rate_window_seconds, days,
    user_agent_status (status for a missing/emailless User-Agent, default 403)."""
    unknown = set(more) - {"now", "frozen", "rate_window_seconds", "days", "user_agent_status"}
    if unknown:
        raise TypeError(f"unknown create_app option(s): {', '.join(sorted(unknown))}")
    config = {
        "api_key": api_key,
        "seed": seed,
        "patients": patients,
        "invoices": invoices,
        "calls_per_minute": calls_per_minute,
        "data_file": data_file,
        "rate_window_seconds": more.get("rate_window_seconds", 60),
        "days": more.get("days", 182),
        "user_agent_status": more.get("user_agent_status", 403),
        "now": more.get("now"),
        "frozen": bool(more.get("frozen", False)),
    }
    clock = Clock(config["now"], frozen=config["frozen"])
    state = SandboxState(clock, data_file)
    if not state.load():
        account = generate(
            seed=seed, patients=patients, invoices=invoices, now=clock.now(), key=api_key, days=config["days"]
        )
        state.put_account(account, primary=True)
        state.save()
    elif state.account_for(api_key) is None:
        state.put_account(
            generate(
                seed=seed,
                patients=patients,
                invoices=invoices,
                now=clock.now(),
                key=api_key,
                days=config["days"],
            ),
            primary=True,
        )
    else:
        state.primary_key = state.account_for(api_key).key

    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.json.compact = True
    app.extensions[EXTENSION] = Sandbox(
        state, clock, RateLimiter(calls_per_minute, config["rate_window_seconds"]), Faults(), config
    )

    from . import control, routes

    app.register_blueprint(routes.bp)
    app.register_blueprint(control.bp)

    @app.errorhandler(404)
    def not_found(_exc):
        return jsonify(message="Not found"), 404

    @app.errorhandler(405)
    def not_allowed(_exc):
        return jsonify(message=f"Method {request.method} not allowed"), 405

    @app.get("/")
    def index():
        return jsonify(
            service="sandbox Cliniko",
            api=request.host_url.rstrip("/") + "/v1",
            control=request.host_url.rstrip("/") + "/_sandbox/state",
        )

    return app
