"""Bulk actions from the job list run as RQ jobs in a real worker process, scoped and audited."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import select

from tests.admin.test_jobs_support import PASSWORD, csrf_from, make_jobs
from tests.conftest import ROOT, subprocess_env
from webapp.extensions import db
from webapp.models import AuditEntry, SyncJob


def run_worker():
    result = subprocess.run([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def statuses(ids):
    db.session.expire_all()
    return {i: db.session.get(SyncJob, i).status for i in ids}


def test_bulk_requeue_ignore_and_requeue_all_through_a_worker(web, make_user, make_practice, redis_conn):
    north = make_practice("north")
    south = make_practice("south")
    ids = make_jobs(north, 10, status="failed")
    other = make_jobs(north, 4, start=100, status="failed", error_category="validation")
    foreign = make_jobs(south, 2, start=200, status="failed")
    make_user("admin@example.com")
    web.login("admin@example.com", PASSWORD)
    token = csrf_from(web.client.get("/jobs/?state=failed").get_data(as_text=True))

    # Re-queue three selected rows; the request only queues the work.
    response = web.client.post("/jobs/bulk", data={"csrf_token": token, "action": "requeue", "ids": ids[:3],
                                                   "state": "failed"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Re-queue of 3 selected row(s) is queued" in html
    assert set(statuses(ids[:3]).values()) == {"failed"}

    # Ignoring needs a reason.
    html = web.client.post("/jobs/bulk", data={"csrf_token": token, "action": "ignore", "ids": ids[3:5]},
                           follow_redirects=True).get_data(as_text=True)
    assert "Give a reason" in html
    html = web.client.post("/jobs/bulk", data={"csrf_token": token, "action": "ignore", "ids": ids[3:5],
                                               "reason": "Written off"}, follow_redirects=True).get_data(as_text=True)
    assert "Ignoring 2 selected row(s) is queued" in html

    # Re-queue all matching (validation failures of north): a confirmation with the count first.
    confirm = web.client.get(f"/jobs/requeue-all?practice={north.id}&category=validation").get_data(as_text=True)
    assert "4 failed or ignored rows match" in confirm
    html = web.client.post("/jobs/requeue-all", data={"csrf_token": token, "practice": north.id,
                                                      "category": "validation"},
                           follow_redirects=True).get_data(as_text=True)
    assert "is queued" in html
    assert set(statuses(other).values()) == {"failed"}

    run_worker()
    assert set(statuses(ids[:3]).values()) == {"pending"}
    assert set(statuses(ids[3:5]).values()) == {"ignored"}
    assert set(statuses(ids[5:]).values()) == {"failed"}
    assert set(statuses(other).values()) == {"pending"}
    assert set(statuses(foreign).values()) == {"failed"}
    assert db.session.get(SyncJob, ids[3]).status_reason == "Written off"

    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    bulk = [(e.action, e.actor, e.details["count"]) for e in entries if e.action in ("requeue.bulk", "ignore")]
    assert sorted(bulk) == sorted([("requeue.bulk", "admin@example.com", 3), ("ignore", "admin@example.com", 2),
                                   ("requeue.bulk", "admin@example.com", 4)])
    ignore = next(e for e in entries if e.action == "ignore")
    assert ignore.details["reason"] == "Written off" and ignore.practice_id == north.id


def test_bulk_jobs_recheck_scope_and_role(app, make_user, make_practice, redis_conn):
    from jobs import bulk

    north = make_practice("north")
    south = make_practice("south")
    mine = make_jobs(north, 2, status="failed")
    theirs = make_jobs(south, 2, start=50, status="failed")
    scoped = make_user("north@example.com", practice_slug="north")
    support = make_user("support@example.com", role="support")

    # Foreign ids slipped into a job: only the user's own rows move.
    assert bulk.requeue_selected(scoped.id, json.dumps(mine + theirs)) == {"requeued": 2}
    assert bulk.ignore_selected(scoped.id, json.dumps(theirs), "nope") == {"ignored": 0}
    assert bulk.requeue_matching(scoped.id, json.dumps({"practice": south.id})) == {"requeued": 0, "matched": 0}
    assert set(statuses(theirs).values()) == {"failed"}
    assert set(statuses(mine).values()) == {"pending"}
    # A support user (or a disabled admin) cannot run bulk actions, even by enqueueing one directly.
    assert bulk.requeue_selected(support.id, json.dumps(theirs))["refused"] is True
    assert bulk.requeue_matching(support.id, "{}")["refused"] is True
    assert set(statuses(theirs).values()) == {"failed"}
