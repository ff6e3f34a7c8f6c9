"""SIGTERM (a Heroku dyno restart): the worker gives its batch back well within 30 s; nothing is lost
and nothing doubled when the work is picked up again."""

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT
from tests.support.engine import audit_xero_against_cliniko, wire_clinic
from tests.sync.test_faults import worker_env
from webapp.extensions import db
from webapp.models import SyncJob
from webapp.sync import backfill as backfills
from webapp.sync_cli import drain


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=9, patients=20, invoices=40),
                     xero_sandbox) as clinic:
        yield clinic


def running(practice_id):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.status == "running"))


def test_sigterm_releases_the_batch_within_30_seconds(app, clinic):
    # Xero is slow: each write takes 8 s, so the worker is mid-batch when the platform stops it.
    clinic.xero("POST", "faults", json={"latency_ms": 8000, "methods": ["PUT"]})
    backfill = backfills.start(clinic.practice, date.today() - timedelta(days=400), None)
    backfills.run(backfill.id)
    from jobs.sync import enqueue_push

    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=worker_env(app, clinic),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        enqueue_push(clinic.practice.id)
        deadline = time.monotonic() + 30
        while not running(clinic.practice.id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(clinic.practice.id), "the worker never claimed a batch"
        stopped_at = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        assert time.monotonic() - stopped_at < 30
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert running(clinic.practice.id) == 0, "rows were left claimed by a stopped worker"
    released = db.session.scalars(select(SyncJob).where(SyncJob.status == "pending", SyncJob.reconcile.is_(True)))
    assert released.first() is not None, "the interrupted batch is flagged to be looked up before any re-send"

    clinic.xero("POST", "faults", json={})
    drain(clinic.practice.id, timeout=60)
    audit_xero_against_cliniko(clinic)
