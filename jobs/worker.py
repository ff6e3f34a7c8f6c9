"""The worker process: RQ HerokuWorker inside the app context (`python -m jobs.worker`)."""

from __future__ import annotations

import logging
import os
import sys

from rq.worker import HerokuWorker

from jobs.queues import QUEUE_NAMES, connection

logger = logging.getLogger(__name__)


class AppWorker(HerokuWorker):
    """HerokuWorker (clean shutdown on SIGTERM) that never shares DB connections with its forks."""

    def fork_work_horse(self, job, queue):
        # Connections opened in the parent must not be reused by the forked horse.
        from webapp.extensions import db

        db.engine.dispose()
        return super().fork_work_horse(job, queue)


def main(argv: list[str] | None = None) -> int:
    """Run a worker on all queues (or those named) until stopped."""
    argv = sys.argv[1:] if argv is None else argv
    burst = "--burst" in argv
    names = [a for a in argv if not a.startswith("--")] or list(QUEUE_NAMES)
    from wsgi import app

    with app.app_context():
        conn = connection(app.config["REDIS_URL"])
        worker = AppWorker(names, connection=conn, name=f"worker-{os.getpid()}")
        logger.info("worker %s listening on %s", worker.name, ", ".join(names))
        worker.work(burst=burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
