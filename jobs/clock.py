"""The clock process: enqueues periodic jobs, once per slot even if two clocks run by mistake."""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

import redis

from jobs.queues import connection, enqueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    """A job path to enqueue every `every` seconds on `queue_name`."""

    name: str
    path: str
    every: float
    queue_name: str = "maintenance"


def periodic_jobs() -> list[Periodic]:
    """What the clock runs (intervals from the environment)."""
    return [
        Periodic("poll", "jobs.sync.poll_all", float(os.environ.get("POLL_INTERVAL_SECONDS", "60")), "live"),
        Periodic("reaper", "jobs.sync.reap", float(os.environ.get("REAPER_SECONDS", "30"))),
        Periodic("heartbeat", "jobs.maintenance.heartbeat", float(os.environ.get("HEARTBEAT_SECONDS", "60"))),
        Periodic("purge-payloads", "jobs.maintenance.purge_all_payloads", 3600.0),
        Periodic("xero-keep-alive", "jobs.xero.keep_alive_all", 6 * 3600.0),
        Periodic("alerts", "jobs.alerts.check_all", 60.0),
    ]


def claim_slot(conn: redis.Redis, job: Periodic, now: float) -> bool:
    """True for exactly one caller per (job, time slot), across every clock process (Redis SET NX)."""
    slot = int(now // job.every)
    key = f"clock:slot:{job.name}:{slot}"
    return bool(conn.set(key, os.getpid(), nx=True, ex=max(int(job.every * 3), 120)))


def tick(conn: redis.Redis, jobs: list[Periodic], now: float | None = None) -> list[str]:
    """Enqueue each periodic job whose slot this process won; returns their names."""
    now = time.time() if now is None else now
    fired = []
    for job in jobs:
        if claim_slot(conn, job, now):
            enqueue(job.path, queue_name=job.queue_name, conn=conn)
            fired.append(job.name)
    return fired


def run(stop_after: float | None = None, resolution: float = 0.5) -> None:
    """Loop until SIGTERM/SIGINT (or `stop_after` seconds, for tests)."""
    from wsgi import app

    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    jobs = periodic_jobs()
    started = time.monotonic()
    with app.app_context():
        conn = connection(app.config["REDIS_URL"])
        logger.info("clock started with %s", ", ".join(f"{j.name}/{j.every:g}s" for j in jobs))
        while not stopping and (stop_after is None or time.monotonic() - started < stop_after):
            try:
                for name in tick(conn, jobs):
                    logger.info("enqueued %s", name)
            except redis.RedisError as exc:
                logger.warning("clock tick failed: %s", exc)
            time.sleep(resolution)


if __name__ == "__main__":
    stop_after = os.environ.get("CLOCK_STOP_AFTER")
    run(float(stop_after) if stop_after else None)
