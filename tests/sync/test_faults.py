"""Faults and crashes: real worker processes against sandbox Xero with 5xx, dropped connections and
429 bursts, one worker killed with SIGKILL mid-run — still every invoice, contact and payment once."""

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.conftest import ROOT, subprocess_env
from tests.support.engine import audit_xero_against_cliniko, wire_clinic
from webapp.extensions import db
from webapp.models import SyncJob, utcnow
from webapp.sync import backfill as backfills
from webapp.sync.reaper import reap_stale
from webapp.sync_cli import drain


@pytest.fixture
def xero_sandbox():
    """Sandbox Xero with 2-second windows (the service is given the same window)."""
    from sandbox.xero.app import create_app
    from tests.support.servers import serve

    with serve(create_app(window_seconds=2)) as url:
        yield url


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=5, patients=80, invoices=240),
                     xero_sandbox) as clinic:
        yield clinic


def worker_env(app, clinic):
    keys = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL",
            "XERO_CONNECTIONS_URL", "XERO_API_URL", "XERO_REDIRECT_URI", "CLINIKO_API_URL",
            "TOKEN_ENCRYPTION_KEYS")
    return subprocess_env(PUSH_TIME_BUDGET_SECONDS="3", XERO_BATCH_SIZE="10", XERO_RATE_WINDOW_SECONDS="2",
                          **{k: app.config[k] for k in keys})


def start_worker(env):
    return subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.environ.get("WORKER_LOG", os.devnull), "a"),
                            start_new_session=True)


def due(practice_id, states=("pending", "retrying")):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(SyncJob).where(
        SyncJob.practice_id == practice_id, SyncJob.status.in_(states)))


def test_faults_and_a_killed_worker_lose_nothing_and_double_nothing(app, clinic):
    app.config["XERO_RATE_WINDOW_SECONDS"] = 2
    clinic.xero("POST", "faults", json={
        "seed": 7, "error_rate": 0.08, "error_status": 503, "drop_rate": 0.06, "rate_limit_rate": 0.03,
        "storm_calls": 4, "retry_after": 1, "methods": ["PUT", "POST"],
    })
    since = date.today() - timedelta(days=400)
    backfill = backfills.start(clinic.practice, since, None)
    backfills.run(backfill.id)
    assert due(clinic.practice.id) > 100

    env = worker_env(app, clinic)
    from jobs.sync import enqueue_push

    # The clock's reaper re-enqueues pushes for due rows, as in production (this also heals the
    # scheduler lock a killed worker may hold).
    clock = subprocess.Popen([sys.executable, "-m", "jobs.clock"], cwd=ROOT,
                             env={**env, "REAPER_SECONDS": "1", "POLL_INTERVAL_SECONDS": "3600"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = [start_worker(env), start_worker(env)]
    try:
        enqueue_push(clinic.practice.id)
        deadline = time.monotonic() + 20
        killed = 0
        while time.monotonic() < deadline and due(clinic.practice.id):
            time.sleep(1.5)
            if killed < 2 and due(clinic.practice.id):
                victim = workers.pop(0)
                os.killpg(victim.pid, signal.SIGKILL)  # the worker and its work horse, mid-batch
                victim.wait(timeout=10)
                killed += 1
                workers.append(start_worker(env))
                enqueue_push(clinic.practice.id)
        assert killed == 2
    finally:
        for proc in [clock, *workers]:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in [clock, *workers]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    # What the killed workers held is given back by the reaper and looked up in Xero before any re-send.
    held = due(clinic.practice.id, ("running",))
    assert reap_stale(timedelta(seconds=0)) == held
    injected = clinic.xero("GET", "faults")["injected"]
    clinic.xero("POST", "faults", json={})
    # Time passes: rows backing off after the faults become due now (instead of waiting minutes).
    db.session.execute(update(SyncJob).where(SyncJob.status == "retrying").values(next_attempt_at=utcnow()))
    db.session.commit()
    drain(clinic.practice.id, timeout=120)
    counts = audit_xero_against_cliniko(clinic)
    rows = clinic.rows()
    assert not [r for r in rows if r.status in ("pending", "retrying", "running")]
    assert sum(injected.values()) >= 3, injected
    assert counts["invoices"] > 150
    for row in rows:
        if row.status == "failed":
            assert row.error_category != "transient" or "gave up" in row.failure_reason
