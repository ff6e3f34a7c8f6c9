"""Alerts (SPEC §9): each condition mails once per episode through a real SMTP server, clears when it
ends (the next episode mails again), shows as a banner to the practice's users only."""

from __future__ import annotations

import email
import socket
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from webapp import alerts
from webapp.models import AuditEntry, SyncJob, XeroConnection, utcnow

PASSWORD = "correct horse battery"


class _Collector:
    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        parsed = email.message_from_bytes(envelope.content)
        self.messages.append({"rcpt": list(envelope.rcpt_tos), "from": envelope.mail_from,
                              "subject": parsed["Subject"], "to": parsed["To"],
                              "body": parsed.get_payload(decode=True).decode()})
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port; `.messages` holds what it received."""
    from aiosmtpd.controller import Controller

    handler = _Collector()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SimpleNamespace(url=f"smtp://127.0.0.1:{port}", messages=handler.messages)
    finally:
        controller.stop()


@pytest.fixture
def mail(app, smtp_server):
    app.config["SMTP_URL"] = smtp_server.url
    app.config["ALERT_FROM"] = "alerts@clinic.test"
    return smtp_server


@pytest.fixture
def clinic(make_practice, make_user):
    """Two practices with admins: one unscoped, one per practice, and a support user."""
    north = make_practice("north", name="North Clinic")
    south = make_practice("south", name="South Clinic")
    make_user("root@example.com")
    make_user("north-admin@example.com", practice_slug="north")
    make_user("north-support@example.com", role="support", practice_slug="north")
    make_user("south-admin@example.com", practice_slug="south")
    return SimpleNamespace(north=north, south=south)


def _connection(db, practice, status="active", tenant="tenant-" + "n"):
    conn = XeroConnection(practice_id=practice.id, tenant_id=f"{tenant}-{practice.slug}",
                          tenant_name=f"{practice.name} Ltd", status=status,
                          last_error="invalid_grant. Reconnect Xero for this practice." if status != "active" else None)
    db.session.add(conn)
    db.session.commit()
    return conn


def _failed_jobs(db, practice, n, age=timedelta(minutes=5)):
    now = utcnow()
    for i in range(n):
        db.session.add(SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=f"c{i}",
                               invoice_number=f"INV-{i:04d}", status="failed", failure_reason=f"Bad account {i}",
                               error_category="validation", created_at=now - age, updated_at=now - age))
    db.session.commit()


def _audit(db, action):
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def test_reconnect_alert_once_per_episode(app, db, clinic, mail, redis_conn):
    conn = _connection(db, clinic.north, status="needs_reconnect")
    assert alerts.check_all()[clinic.north.id]["mailed"] == ["reconnect"]
    assert alerts.check_all()[clinic.north.id] == {"raised": [], "cleared": [], "mailed": []}
    [message] = mail.messages
    # The practice's admins: its scoped admin and the admin of all practices; not support, not South's.
    assert sorted(message["rcpt"]) == ["north-admin@example.com", "root@example.com"]
    assert message["from"] == "alerts@clinic.test"
    assert "North Clinic" in message["subject"] and "reconnect" in message["subject"].lower()
    assert "North Clinic Ltd" in message["body"]
    # Reconnected: cleared; a new episode mails again.
    conn.status = "active"
    db.session.commit()
    assert alerts.check_all()[clinic.north.id]["cleared"] == ["reconnect"]
    assert alerts.stored(clinic.north.id) == {}
    conn.status = "needs_reconnect"
    db.session.commit()
    alerts.check_all()
    alerts.check_all()
    assert len(mail.messages) == 2
    assert len(_audit(db, "alert.raised")) == 2 and len(_audit(db, "alert.cleared")) == 1


def test_failures_digest_threshold_from_settings(app, db, clinic, mail):
    _failed_jobs(db, clinic.north, 9)
    _failed_jobs(db, clinic.south, 3)
    # Old failures (over an hour ago) do not count.
    db.session.add(SyncJob(practice_id=clinic.north.id, kind="invoice", cliniko_id="old", status="failed",
                           updated_at=utcnow() - timedelta(hours=2), created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    alerts.check_all()
    assert mail.messages == []  # 9 < default threshold 10; South has 3
    clinic.south.settings = {"alert_failure_threshold": 3}
    db.session.commit()
    db.session.add(SyncJob(practice_id=clinic.north.id, kind="payment", cliniko_id="p1", status="failed",
                           failure_reason="Payment account cannot take payments", updated_at=utcnow()))
    db.session.commit()
    alerts.check_all()
    alerts.check_all()
    by_practice = {("North" in m["subject"]): m for m in mail.messages}
    assert len(mail.messages) == 2  # one digest per practice, not one mail per invoice
    north = by_practice[True]["body"]
    assert "10 items failed in the last hour (alert threshold 10)" in north
    assert "INV-0000" in north and "Payment account cannot take payments" in north
    assert "3 items failed" in by_practice[False]["body"]
    assert by_practice[False]["rcpt"] == ["root@example.com", "south-admin@example.com"]


def test_failures_digest_is_capped(app, db, clinic, mail):
    _failed_jobs(db, clinic.north, 25)
    alerts.check_all()
    [message] = mail.messages
    assert "… and 5 more." in message["body"]


def test_sync_stopped_after_three_intervals(app, db, clinic, mail):
    app.config["POLL_INTERVAL_SECONDS"] = 60
    practice = clinic.north
    practice.sync_enabled = True
    practice.last_successful_poll_at = utcnow() - timedelta(seconds=150)
    db.session.commit()
    alerts.check_all()
    assert mail.messages == []
    practice.last_successful_poll_at = utcnow() - timedelta(seconds=200)
    practice.last_poll_error = "ClinikoAuthError: the API key was refused"
    db.session.commit()
    alerts.check_all()
    alerts.check_all()
    [message] = mail.messages
    assert "No successful poll" in message["body"] and "API key was refused" in message["body"]
    # A successful poll ends the episode.
    practice.last_successful_poll_at = utcnow()
    db.session.commit()
    assert alerts.check_all()[practice.id]["cleared"] == ["sync_stopped"]
    # Paused practices never alert.
    practice.sync_enabled = False
    practice.last_successful_poll_at = utcnow() - timedelta(hours=5)
    db.session.commit()
    alerts.check_all()
    assert len(mail.messages) == 1


def test_sync_stopped_when_never_polled_counts_from_enable(app, db, clinic, mail):
    practice = clinic.north
    practice.sync_enabled = True
    db.session.add(AuditEntry(actor="root@example.com", action="practice.enable", practice_id=practice.id,
                              at=utcnow() - timedelta(seconds=30)))
    db.session.commit()
    alerts.check_all()
    assert mail.messages == []
    db.session.add(AuditEntry(actor="root@example.com", action="practice.enable", practice_id=clinic.south.id,
                              at=utcnow() - timedelta(hours=1)))
    clinic.south.sync_enabled = True
    db.session.commit()
    alerts.check_all()
    [message] = mail.messages
    assert "South Clinic" in message["subject"] and "has not been polled successfully" in message["body"]


def test_daily_limit_from_budget(app, db, clinic, mail):
    from webapp.practices import xero_budget

    conn = _connection(db, clinic.north)
    alerts.check_all()
    assert mail.messages == []
    budget = xero_budget()
    budget.park(conn.tenant_id, time.time() + 3600, "day")
    alerts.check_all()
    alerts.check_all()
    [message] = mail.messages
    assert "daily limit" in message["subject"].lower() and "North Clinic Ltd" in message["body"]
    # The park ends: cleared.
    budget.redis.delete(budget._k("park", conn.tenant_id))
    assert alerts.check_all()[clinic.north.id]["cleared"] == ["daily_limit"]
    # Counting up to XERO_DAILY_CALLS also counts as reached.
    app.config["XERO_DAILY_CALLS"] = 3
    budget = xero_budget()
    for _ in range(3):
        decision = budget.acquire(conn.tenant_id)
        assert decision.go
        budget.release(decision)
    alerts.check_all()
    assert len(mail.messages) == 2


def test_no_smtp_means_banner_only(app, db, clinic, web):
    app.config["SMTP_URL"] = None
    _connection(db, clinic.north, status="needs_reconnect")
    changes = alerts.check_all()[clinic.north.id]
    assert changes["raised"] == ["reconnect"] and changes["mailed"] == []
    web.login("north-support@example.com", PASSWORD)
    html = web.client.get("/").get_data(as_text=True)
    assert f'data-testid="alert-{clinic.north.id}-reconnect"' in html
    assert "Xero needs reconnecting" in html


def test_smtp_down_retries_mail_on_next_check(app, db, clinic, smtp_server):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{_free_port()}"  # nobody listens there
    _connection(db, clinic.north, status="needs_reconnect")
    assert alerts.check_all()[clinic.north.id]["mailed"] == []
    assert alerts.stored(clinic.north.id)["reconnect"]["mailed"] is False
    app.config["SMTP_URL"] = smtp_server.url
    assert alerts.check_all()[clinic.north.id]["mailed"] == ["reconnect"]
    alerts.check_all()
    assert len(smtp_server.messages) == 1


def test_banner_visible_only_within_scope(app, db, clinic, make_user):
    from tests.conftest import CsrfClient

    _connection(db, clinic.north, status="needs_reconnect")
    alerts.check_all()
    marker = f'data-testid="alert-{clinic.north.id}-reconnect"'
    seen = {}
    for email_ in ("root@example.com", "north-admin@example.com", "north-support@example.com",
                   "south-admin@example.com"):
        web = CsrfClient(app.test_client())
        web.login(email_, PASSWORD)
        seen[email_] = marker in web.client.get("/").get_data(as_text=True)
    assert seen == {"root@example.com": True, "north-admin@example.com": True,
                    "north-support@example.com": True, "south-admin@example.com": False}


def test_banner_text_is_escaped(app, db, clinic, web):
    clinic.north.name = "<script>alert(1)</script>"
    db.session.commit()
    _connection(db, clinic.north, status="needs_reconnect")
    alerts.check_all()
    web.login("root@example.com", PASSWORD)
    html = web.client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_state_of_deleted_practice_is_dropped(app, db, clinic, redis_conn):
    redis_conn.hset(f"{alerts.KEY_PREFIX}99999", "reconnect", "{}")
    alerts.check_all()
    assert not redis_conn.exists(f"{alerts.KEY_PREFIX}99999")


def test_clock_runs_the_alert_check_every_minute():
    from jobs import clock

    [job] = [j for j in clock.periodic_jobs() if j.path == "jobs.alerts.check_all"]
    assert job.every == 60


def test_alert_job_through_a_real_worker(app, db, clinic, smtp_server, redis_conn):
    import subprocess
    import sys

    from jobs.queues import enqueue
    from tests.conftest import ROOT, subprocess_env

    _connection(db, clinic.north, status="needs_reconnect")
    enqueue("jobs.alerts.check_all", queue_name="maintenance", conn=redis_conn)
    enqueue("jobs.alerts.check_all", queue_name="maintenance", conn=redis_conn)
    result = subprocess.run([sys.executable, "-m", "jobs.worker", "--burst", "maintenance"], cwd=ROOT,
                            env=subprocess_env(SMTP_URL=smtp_server.url, ALERT_FROM="alerts@clinic.test"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(smtp_server.messages) == 1
    assert alerts.stored(clinic.north.id)["reconnect"]["mailed"] is True
