"""/healthz for the platform: database and Redis status as JSON, no login."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from webapp.extensions import db
from webapp.redis_conn import redis_client

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _check(fn) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:  # any failure means "down"; the reason goes to the log, not the body
        logger.warning("health check failed: %s", type(exc).__name__)
        return "down"


@bp.route("/healthz")
def healthz():
    """200 when Postgres and Redis both answer, 503 otherwise."""
    database = _check(lambda: db.session.execute(text("SELECT 1")))
    if database == "down":
        db.session.rollback()
    redis = _check(lambda: redis_client().ping())
    ok = database == "ok" and redis == "ok"
    body = {"status": "ok" if ok else "down", "database": database, "redis": redis}
    return jsonify(body), 200 if ok else 503
