"""Queues: enqueue by dotted path with ids only; a real worker process runs the jobs."""

import subprocess
import sys
from datetime import timedelta

import pytest
from rq import Queue

from jobs import queues
from jobs.maintenance import HEARTBEAT_KEY
from tests.conftest import ROOT, TEST_REDIS_URL, subprocess_env
from webapp.models import Practice, SyncAttempt, SyncJob, utcnow


def test_enqueue_stores_the_path_and_ids_only(redis_conn):
    job = queues.enqueue("jobs.maintenance.purge_attempt_payloads", 42, conn=redis_conn)
    assert job.func_name == "jobs.maintenance.purge_attempt_payloads"
    assert job.args == (42,)
    assert job.origin == "live"
    assert Queue("live", connection=redis_conn).count == 1


@pytest.mark.parametrize("bad", [{"id": 1}, [1], 1.5, object(), True])
def test_enqueue_refuses_anything_but_ids(redis_conn, bad):
    with pytest.raises(queues.EnqueueError, match="row ids"):
        queues.enqueue("jobs.maintenance.purge_attempt_payloads", bad, conn=redis_conn)
    assert Queue("live", connection=redis_conn).count == 0


def test_enqueue_refuses_unknown_queue_and_bare_names(redis_conn):
    with pytest.raises(ValueError, match="Unknown queue"):
        queues.enqueue("jobs.maintenance.heartbeat", queue_name="nope", conn=redis_conn)
    with pytest.raises(queues.EnqueueError, match="dotted path"):
        queues.enqueue("heartbeat", conn=redis_conn)


def test_fixed_job_id_is_not_enqueued_twice(redis_conn):
    first = queues.enqueue("jobs.maintenance.heartbeat", job_id="hb-1", conn=redis_conn)
    second = queues.enqueue("jobs.maintenance.heartbeat", job_id="hb-1", conn=redis_conn)
    assert first.id == second.id
    assert Queue("live", connection=redis_conn).count == 1


def test_enqueue_in_goes_to_the_scheduled_registry(redis_conn):
    job = queues.enqueue("jobs.maintenance.heartbeat", delay=timedelta(minutes=5), conn=redis_conn)
    assert job.get_status() == "scheduled"


def _run_worker_burst(timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "jobs.worker", "--burst"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
    )


def test_real_worker_process_runs_a_job_that_reloads_its_row(db, redis_conn, make_practice):
    practice = make_practice(settings={"payload_retention_days": 30})
    job = SyncJob(practice_id=practice.id, kind="invoice", cliniko_id="1")
    db.session.add(job)
    db.session.flush()
    old = SyncAttempt(job_id=job.id, outcome="synced", request_body={"InvoiceNumber": "1"},
                      started_at=utcnow() - timedelta(days=31))
    recent = SyncAttempt(job_id=job.id, outcome="synced", request_body={"InvoiceNumber": "1"})
    db.session.add_all([old, recent])
    db.session.commit()
    rq_job = queues.enqueue("jobs.maintenance.purge_attempt_payloads", practice.id, conn=redis_conn)
    queues.enqueue("jobs.maintenance.heartbeat", queue_name="maintenance", conn=redis_conn)

    result = _run_worker_burst()
    assert result.returncode == 0, result.stderr[-2000:]
    rq_job.refresh()
    assert rq_job.get_status() == "finished"
    assert rq_job.return_value() == 1
    db.session.expire_all()
    assert db.session.get(SyncAttempt, old.id).request_body is None
    assert db.session.get(SyncAttempt, recent.id).request_body == {"InvoiceNumber": "1"}
    assert int(redis_conn.hget(HEARTBEAT_KEY, "runs")) == 1


def test_job_for_a_deleted_row_finishes_quietly(db, redis_conn):
    assert db.session.get(Practice, 999) is None
    rq_job = queues.enqueue("jobs.maintenance.purge_attempt_payloads", 999, conn=redis_conn)
    result = _run_worker_burst()
    assert result.returncode == 0
    rq_job.refresh()
    assert rq_job.get_status() == "finished" and rq_job.return_value() == 0


def test_redis_url_comes_from_the_environment_outside_an_app(monkeypatch):
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    assert queues.redis_url() == TEST_REDIS_URL
