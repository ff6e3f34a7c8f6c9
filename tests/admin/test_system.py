"""System screen: queues and depth, a real worker and its heartbeat, scheduled jobs, failed count, rate
budgets per tenant, the clock heartbeat and the version; for unscoped admins only."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta

from rq import Worker

from jobs.queues import enqueue
from tests.conftest import ROOT, subprocess_env
from webapp.models import XeroConnection

PASSWORD = "correct horse battery"


def _row(html: str, testid: str) -> str:
    match = re.search(rf'<tr data-testid="{re.escape(testid)}">(.*?)</tr>', html, re.S)
    assert match, f"no row {testid}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def test_system_screen(web, app, db, redis_conn, make_user, make_practice):
    from webapp.practices import xero_budget

    practice = make_practice("north", name="North Clinic")
    db.session.add_all([
        XeroConnection(practice_id=practice.id, tenant_id="tenant-a", tenant_name="North Ltd", status="active"),
        XeroConnection(practice_id=practice.id, tenant_id="tenant-b", tenant_name="Old Ltd", status="revoked"),
    ])
    db.session.commit()
    make_user("root@example.com")
    budget = xero_budget()
    for _ in range(2):
        budget.acquire("tenant-a")
    budget.park("tenant-a", time.time() + 600, "day")
    for _ in range(3):
        enqueue("jobs.maintenance.heartbeat", queue_name="backfill", conn=redis_conn)
    enqueue("jobs.maintenance.heartbeat", queue_name="maintenance", delay=timedelta(hours=1), conn=redis_conn)
    redis_conn.hset("clock:heartbeat", mapping={"last": time.time() - 5, "runs": 42})

    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker", "live"], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while not Worker.all(connection=redis_conn) and time.time() < deadline:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        web.login("root@example.com", PASSWORD)
        response = web.client.get("/system/")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert _row(html, "queue-backfill").startswith("backfill 3 ")
    assert _row(html, "queue-live").startswith("live 0 ")
    assert _row(html, "queue-maintenance").split()[:4] == ["maintenance", "0", "0", "1"]
    worker_row = _row(html, f"worker-worker-{worker.pid}")
    assert "live" in worker_row and "s ago" in worker_row
    assert "jobs.maintenance.heartbeat" in html  # the scheduled job
    budget_row = _row(html, "budget-tenant-a")
    assert "North Ltd" in budget_row and "2 / 5000" in budget_row and "(day)" in budget_row
    assert "tenant-b" not in html  # only active connections
    assert "42 runs" in html and "badge-success" in html
    version = re.search(r'data-testid="app-version">Version <strong>([^<]+)</strong>', html).group(1)
    assert version.startswith("0.1.0")


def test_system_without_clock_says_so(web, redis_conn, make_user):
    make_user("root@example.com")
    web.login("root@example.com", PASSWORD)
    html = web.client.get("/system/").get_data(as_text=True)
    assert "no heartbeat" in html and "No worker is running." in html


def test_failed_registry_count(web, redis_conn, make_user):
    from rq import Queue

    make_user("root@example.com")
    queue = Queue("live", connection=redis_conn)
    job = queue.enqueue("jobs.maintenance.heartbeat")
    queue.remove(job)
    queue.failed_job_registry.add(job, ttl=600, exc_string="boom")
    web.login("root@example.com", PASSWORD)
    html = web.client.get("/system/").get_data(as_text=True)
    assert _row(html, "queue-live").split()[-1] == "1"


def test_system_is_for_unscoped_admins(app, make_user, make_practice):
    from tests.conftest import CsrfClient

    make_practice("north")
    make_user("support@example.com", role="support")
    make_user("north-admin@example.com", practice_slug="north")
    for email in ("support@example.com", "north-admin@example.com"):
        web = CsrfClient(app.test_client())
        web.login(email, PASSWORD)
        assert web.client.get("/system/").status_code == 403
        assert 'href="/system/"' not in web.client.get("/").get_data(as_text=True)
    assert app.test_client().get("/system/").status_code == 302
