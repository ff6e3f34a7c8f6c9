"""Redis connection, named queues, and enqueue-by-dotted-path with row ids only."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

import redis
from rq import Queue, Retry

logger = logging.getLogger(__name__)

# Highest priority first: a worker listening on all of them drains `live` before the others. A backfill's
# discovery (`discovery`) goes before backfill pushes: practices that ask for a backfill together all have
# their rows recorded early and then share the workers push turn by push turn, instead of the first ones
# finishing before the last ones have started reading Cliniko.
QUEUE_NAMES = ("live", "discovery", "backfill", "maintenance")
DEFAULT_TIMEOUT = 600


class EnqueueError(ValueError):
    """A job was enqueued with something other than ids (rows are reloaded by the job)."""


def redis_url() -> str:
    """REDIS_URL from the current app if there is one, else from the environment."""
    try:
        from flask import current_app

        return current_app.config["REDIS_URL"]
    except RuntimeError:
        url = os.environ.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set.") from None
        return url


_connections: dict[str, redis.Redis] = {}


def connection(url: str | None = None) -> redis.Redis:
    """A Redis connection for RQ (cached per URL and process)."""
    url = url or redis_url()
    conn = _connections.get(url)
    if conn is None:
        conn = _connections[url] = redis.Redis.from_url(url)
    return conn


def queue(name: str = "live", conn: redis.Redis | None = None) -> Queue:
    """One of QUEUE_NAMES."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"Unknown queue {name!r}; use one of {', '.join(QUEUE_NAMES)}.")
    return Queue(name, connection=conn or connection(), default_timeout=DEFAULT_TIMEOUT)


def _check_ids(args: tuple) -> None:
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, int | str):
            raise EnqueueError(f"Jobs take row ids, not {type(arg).__name__}; reload the row in the job.")


def enqueue(
    path: str,
    *ids: int | str,
    queue_name: str = "live",
    job_id: str | None = None,
    at: datetime | None = None,
    delay: timedelta | None = None,
    retry: Retry | None = None,
    conn: redis.Redis | None = None,
):
    """Enqueue the function at dotted `path` with ids only; returns the RQ job.

    A fixed `job_id` makes the call idempotent while that job is still queued or scheduled.
    """
    if "." not in path:
        raise EnqueueError(f"{path!r} is not a dotted path like 'jobs.maintenance.heartbeat'.")
    _check_ids(ids)
    q = queue(queue_name, conn)
    if job_id is not None:
        existing = q.fetch_job(job_id)
        if existing is not None and existing.get_status(refresh=True) in ("queued", "scheduled", "deferred"):
            return existing
    kwargs = {"job_id": job_id, "retry": retry, "result_ttl": 300, "failure_ttl": 7 * 86400}
    if at is not None:
        return q.enqueue_at(at, path, *ids, **kwargs)
    if delay is not None:
        return q.enqueue_in(delay, path, *ids, **kwargs)
    return q.enqueue(path, *ids, **kwargs)
