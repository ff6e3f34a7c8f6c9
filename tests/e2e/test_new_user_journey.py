"""In a real browser, as a new user would do it, with both sandboxes over real HTTP and a REAL worker
process and clock running: sign in → Practices → New practice (paste the Cliniko key) → Test Cliniko
connection → Connect to Xero (sandbox sign-in and consent pages) → choose the default accounts → map
Cliniko taxes on the Mappings screen (GST → OUTPUT, GST Free → EXEMPTOUTPUT) → Turn sync on → start a
backfill from a date → invoices arrive on the Synchronised invoices list → a synced invoice's detail shows
its attempt timeline. Small clinic (40 patients, 80 invoices), Xero windows of 2 s for the sandbox, the
app, the worker and the clock.

Also, in the browser: a user scoped to practice A gets the 404 page for practice B's job detail (and
for B's practice page), while A's own job detail opens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.conftest import ROOT, subprocess_env
from tests.support.browser import signed_in as sign_in
from tests.support.servers import serve

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
CLINIKO_KEY = "sandbox-key-au1"
WINDOW = 2
SYNC_WAIT_MS = 45_000


@pytest.fixture
def xero_sandbox():
    """Sandbox Xero with 2-second rate windows and its sign-in/consent pages (no auto consent)."""
    from sandbox.xero.app import create_app

    with serve(create_app(window_seconds=WINDOW)) as url:
        yield url


@pytest.fixture
def cliniko_sandbox():
    """Sandbox Cliniko: a small clinic (40 patients, 80 invoices) on a free port."""
    from sandbox.cliniko.app import create_app

    with serve(create_app(api_key=CLINIKO_KEY, seed=21, patients=40, invoices=80)) as url:
        yield url


@pytest.fixture
def stack(xero_app, live_server, xero_sandbox, cliniko_sandbox):
    """The live app pointed at both sandboxes, and a real `jobs.worker` and `jobs.clock` with the same
    settings (XERO_RATE_WINDOW_SECONDS=2 everywhere); both processes stopped after the test."""
    xero_app.config.update(XERO_REDIRECT_URI=f"{live_server}/xero/callback",
                           CLINIKO_API_URL=f"{cliniko_sandbox}/v1", XERO_RATE_WINDOW_SECONDS=WINDOW)
    c = xero_app.config
    keys = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL",
            "XERO_CONNECTIONS_URL", "XERO_API_URL", "XERO_REDIRECT_URI", "CLINIKO_API_URL")
    env = subprocess_env(XERO_RATE_WINDOW_SECONDS=WINDOW, LOG_LEVEL="WARNING", **{k: c[k] for k in keys})
    log = open(os.environ.get("WORKER_LOG", os.devnull), "a")  # noqa: SIM115 (closed below)
    procs = [
        subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env, stdout=log, stderr=log,
                         start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "jobs.clock"], cwd=ROOT,
                         env={**env, "REAPER_SECONDS": "2", "POLL_INTERVAL_SECONDS": "5"},
                         stdout=log, stderr=log, start_new_session=True),
    ]
    try:
        yield {"url": live_server, "xero": xero_sandbox, "cliniko": cliniko_sandbox, "procs": procs}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def alive(procs) -> None:
    for proc in procs:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode} (set WORKER_LOG to see why)"


def test_new_user_sets_up_a_practice_and_sees_invoices_synced(page, stack, make_user, db):
    from webapp.models import Practice, SyncAttempt, SyncJob

    started = time.monotonic()
    make_user("admin@example.com")
    sign_in(page, "admin@example.com")

    # Practices → New practice: name, slug, the Cliniko key pasted.
    page.get_by_role("link", name="Practices").click()
    page.get_by_role("link", name="New practice").click()
    page.get_by_label("Name").fill("Harbour Physio")
    page.get_by_label("Slug").fill("harbour")
    page.get_by_label("Cliniko API key").fill(CLINIKO_KEY)
    page.get_by_role("button", name="Create practice").click()
    expect(page.get_by_role("alert").filter(has_text="Created Harbour Physio")).to_be_visible()
    expect(page.get_by_role("heading", name="Harbour Physio")).to_contain_text("sync off")
    practice_id = int(re.search(r"/practices/(\d+)/", page.url).group(1))

    # Test Cliniko connection: the sandbox answers with its account and businesses.
    page.get_by_role("button", name="Test Cliniko connection").click()
    expect(page.get_by_role("alert").filter(has_text="Cliniko connected")).to_be_visible()

    # Connect to Xero: sandbox sign-in, organisation choice, Allow access, back on the practice page.
    page.get_by_role("link", name="Connect to Xero").click()
    expect(page).to_have_url(re.compile("^" + re.escape(stack["xero"]) + "/identity/connect/authorize"))
    hint = page.get_by_text("Sandbox user:").inner_text()
    email, password = re.search(r"Sandbox user: (\S+) / (\S+)", hint).groups()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Organisation").select_option(label="Demo Clinic Pty Ltd")
    page.get_by_role("button", name="Allow access").click()
    expect(page).to_have_url(re.compile("^" + re.escape(stack["url"]) + rf"/practices/{practice_id}/$"))
    expect(page.get_by_role("alert").filter(has_text="Connected to Demo Clinic Pty Ltd")).to_be_visible()

    # Defaults: sales 200, payment 090, rounding 860, tax-exempt EXEMPTOUTPUT.
    page.get_by_label("Default sales account").select_option("200")
    page.get_by_label("Default payment account").select_option("090")
    page.get_by_label("Rounding account").select_option("860")
    page.get_by_label("Tax-exempt rate").select_option("EXEMPTOUTPUT")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_role("alert")).to_have_text("Default accounts saved.")

    # Mappings: read the Cliniko catalogue, then map the two Cliniko taxes.
    page.get_by_role("navigation").get_by_role("link", name="Mappings").first.click()
    page.get_by_role("button", name="Refresh from Cliniko").click()
    expect(page.get_by_role("alert").filter(has_text="Read from Cliniko")).to_be_visible()
    taxes = page.get_by_test_id("table-tax")
    taxes.get_by_label("Xero tax rate for GST", exact=True).select_option("OUTPUT")
    taxes.get_by_label("Xero tax rate for GST Free", exact=True).select_option("EXEMPTOUTPUT")
    taxes.get_by_role("button", name="Save taxes").click()
    expect(page.get_by_role("alert").filter(has_text="Saved taxes")).to_be_visible()
    expect(page.get_by_test_id("table-tax").get_by_label("Xero tax rate for GST", exact=True)).to_have_value("OUTPUT")

    # Turn sync on (back on the practice page).
    page.goto(f"/practices/{practice_id}/")
    page.get_by_role("button", name="Turn sync on").click()
    expect(page.get_by_role("alert")).to_have_text("Sync is on.")

    # Backfill from a date: the real worker discovers and pushes; the clock reaps and polls.
    page.locator(f"a[href='/backfill/{practice_id}/']").first.click()
    since = (date.today() - timedelta(days=400)).isoformat()
    page.get_by_label("Invoices issued on or after").fill(since)
    page.get_by_role("button", name="Start backfill").click()
    expect(page.get_by_text("started.")).to_have_count(1)

    # Synchronised invoices: reload until the synced tab counts some rows (bounded wait).
    page.get_by_role("link", name="Synchronised invoices").first.click()
    list_url = f"/jobs/?practice={practice_id}&kind=invoice&state=synced"
    deadline = time.monotonic() + SYNC_WAIT_MS / 1000
    synced = 0
    while time.monotonic() < deadline:
        page.goto(list_url)
        synced = int(page.get_by_test_id("count-synced").inner_text().replace(",", "").rstrip("+"))
        if synced:
            break
        alive(stack["procs"])
        time.sleep(1)
    assert synced > 0, "no invoice reached Xero within the wait"
    rows = page.get_by_test_id("jobs-table").locator("tbody tr[data-job-id]")
    expect(rows.first).to_be_visible()
    expect(rows.first).to_contain_text("synced")

    # Open a synced invoice: state, Xero link, and its attempt timeline.
    job_id = int(rows.first.get_attribute("data-job-id"))
    rows.first.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}/$"))
    expect(page.get_by_test_id("job-state")).to_have_text("synced")
    expect(page.get_by_test_id("xero-link")).to_have_attribute("href", re.compile("InvoiceID="))
    timeline = page.get_by_test_id("timeline")
    expect(timeline.get_by_test_id("attempt").first).to_be_visible()
    first_attempt = timeline.get_by_test_id("attempt").first
    expect(first_attempt.locator("td").nth(2)).to_have_text(re.compile(r"^2\d\d$"))

    # What the browser showed is what the database and sandbox Xero hold.
    db.session.expire_all()
    row = db.session.get(SyncJob, job_id)
    assert row.practice_id == practice_id and row.kind == "invoice" and row.status == "synced" and row.xero_id
    assert db.session.scalar(select(SyncAttempt.id).where(SyncAttempt.job_id == job_id)) is not None
    practice = db.session.get(Practice, practice_id)
    assert practice.sync_enabled and practice.settings.get("sales_account") == "200"
    import requests

    org = next(o for o in requests.get(f"{stack['xero']}/_sandbox/state", timeout=30).json()["organisations"]
               if o["name"] == "Demo Clinic Pty Ltd")
    assert row.invoice_number in {i["InvoiceNumber"] for i in org["invoices"]}
    alive(stack["procs"])
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
    assert time.monotonic() - started < 90


def test_scoped_user_cannot_reach_another_practices_job(browser, live_server, make_user, make_practice, db):
    from webapp.models import SyncJob

    a, b = make_practice("alpha", name="Alpha Clinic"), make_practice("bravo", name="Bravo Clinic")
    rows = {}
    for practice, number in ((a, "A-1001"), (b, "B-2002")):
        row = SyncJob(practice_id=practice.id, kind="invoice", cliniko_id=number[2:], invoice_number=number,
                      patient_name="Sam Example", status="pending", attempts=0, max_attempts=12, priority=0)
        db.session.add(row)
        rows[practice.slug] = row
    db.session.commit()
    make_user("alpha-admin@example.com", role="admin", practice_slug="alpha")

    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, "alpha-admin@example.com")
        ours = page.goto(f"/jobs/{rows['alpha'].id}/")
        assert ours.status == 200
        expect(page.get_by_role("heading", name=re.compile("A-1001"))).to_be_visible()

        for url in (f"/jobs/{rows['bravo'].id}/", f"/practices/{b.id}/", f"/jobs/?practice={b.id}&q=B-2002"):
            response = page.goto(url)
            if url.startswith("/jobs/?"):  # the list never shows another practice's rows
                assert response.status in (200, 404)
                expect(page.get_by_text("B-2002")).to_have_count(0)
                continue
            assert response.status == 404, url
            expect(page.get_by_text("Not found")).to_be_visible()
            expect(page.get_by_text("Bravo Clinic")).to_have_count(0)
            expect(page.get_by_text("B-2002")).to_have_count(0)
    finally:
        context.close()
