"""SPEC §12 (a): SIGKILL workers at random moments during a backfill, several times; then every row
is final with a reason, and Xero holds each invoice, contact and payment exactly once, to the cent.

The backfill is started as the UI starts it (its discovery job goes to RQ, a worker runs it). The
first kill aims at the worker running that discovery (found through RQ's job record) as soon as it
has started; the rest come at random intervals while work remains."""

import os
import signal
import time

from rq.job import Job

from jobs.queues import connection
from tests.chaos.harness import (
    QUICK_STALE,
    SIZE,
    audit,
    finished,
    hurry_retries,
    reap,
    revive_backfills,
    run_until_finished,
    start_backfill,
)
from webapp.extensions import db
from webapp.models import Backfill


def kill_discovery(app, fleet, backfill_id: int, seconds: float = 15) -> bool:
    """SIGKILL the worker whose work horse runs the backfill's discovery, mid-walk; False if missed."""
    conn = connection(app.config["REDIS_URL"])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        backfill = db.session.get(Backfill, backfill_id)
        state = backfill.state
        db.session.commit()
        if state == "done":
            return False
        if state == "running":
            job = Job.fetch(f"backfill-{backfill_id}", connection=conn)
            pid = int((job.worker_name or "worker-0").rsplit("-", 1)[1])
            for proc in fleet.workers:
                if proc.pid == pid:
                    fleet.workers.remove(proc)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                    fleet.killed += 1
                    fleet.start_worker()
                    return True
        time.sleep(0.02)
    return False


def test_sigkilled_workers_lose_nothing_and_double_nothing(app, clinic, make_fleet, rng):
    backfill_id = start_backfill(clinic)
    fleet = make_fleet()
    hit_discovery = kill_discovery(app, fleet, backfill_id)
    deadline = time.monotonic() + SIZE.chaos_seconds
    next_kill = time.monotonic() + rng.uniform(1.0, 3.5)
    while fleet.killed < SIZE.kills and time.monotonic() < deadline:
        if finished(clinic.practice.id, backfill_id):
            break
        if time.monotonic() >= next_kill:
            fleet.kill_one()
            next_kill = time.monotonic() + rng.uniform(1.0, 3.5)
        reap(QUICK_STALE)
        revive_backfills(QUICK_STALE)
        hurry_retries()
        time.sleep(0.2)
    assert fleet.killed >= min(2, SIZE.kills), f"the run ended after {fleet.killed} kills; make it longer"

    calm = run_until_finished(clinic, backfill_id, fleet, SIZE.finish_seconds, stale=QUICK_STALE)
    fleet.stop()
    counts = audit(clinic)
    print(f"\nkills: {fleet.killed} (discovery hit: {hit_discovery}), finished {calm:.1f} s after the last, "
          f"audit: {counts}")
    assert counts["invoices"] >= SIZE.invoices // 2, counts
