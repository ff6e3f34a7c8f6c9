"""The app's Redis connection (one per process, from REDIS_URL)."""

from __future__ import annotations

import redis
from flask import current_app

_EXTENSION_KEY = "redis_client"


def init_app(app) -> None:
    """Create the connection for this app (lazy; connects on first use)."""
    app.extensions[_EXTENSION_KEY] = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def redis_client() -> redis.Redis:
    """The current app's Redis connection."""
    return current_app.extensions[_EXTENSION_KEY]
