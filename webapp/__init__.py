"""The Flask app: create_app() wires config, extensions, blueprints, admin and CLI."""

from __future__ import annotations

import logging
import sys

from flask import Flask

from webapp import config as config_module


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app from the environment; `overrides` (tests) win over it."""
    app = Flask(__name__)
    app.config.update(config_module.load(overrides=overrides))
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def configure_logging(app: Flask) -> None:
    """Log to stderr at LOG_LEVEL (12-factor)."""
    level = getattr(logging, str(app.config["LOG_LEVEL"]).upper(), logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    # requests-oauthlib logs token request and response bodies at DEBUG: never let tokens reach the
    # logs, whatever level someone sets on that logger later.
    for name in ("requests_oauthlib", "oauthlib"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    session_logger = logging.getLogger("requests_oauthlib.oauth2_session")
    if not any(isinstance(f, _NoDebug) for f in session_logger.filters):
        session_logger.addFilter(_NoDebug())


class _NoDebug(logging.Filter):
    """Drop DEBUG records (they carry OAuth token bodies)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def register_extensions(app: Flask) -> None:
    """Bind the extension objects to this app."""
    from webapp import errors, redis_conn, security
    from webapp.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.session_protection = "strong"
    redis_conn.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from webapp.models import User

    @login_manager.user_loader
    def _load_user(user_id: str):
        user = db.session.get(User, int(user_id))
        return user if user is not None and user.active else None


def register_blueprints(app: Flask) -> None:
    """Auth, health and the admin screens."""
    from webapp import admin, auth, health, xero

    app.register_blueprint(auth.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(xero.bp)
    admin.init_app(app)


def register_commands(app: Flask) -> None:
    """`flask --app wsgi users|practices|sync|keys|sandbox …`."""
    from webapp import cli

    cli.init_app(app)


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"
