"""In a real browser, with a real worker process: start a backfill from a date, watch the progress bar
(static backfill.js polling JSON, no inline script) reach 100 %, then see the dashboard with data
(screenshot into docs/screenshots/dashboard.png)."""

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, subprocess_env
from tests.support.engine import PASSWORD, wire_clinic

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(ROOT) / "docs" / "screenshots" / "dashboard.png"


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    from sandbox.cliniko.app import create_app

    with wire_clinic(app, web, make_user, make_practice,
                     create_app(api_key="sandbox-key-au1", seed=11, patients=15, invoices=40),
                     xero_sandbox) as clinic:
        yield clinic


@pytest.fixture
def worker(app, clinic):
    """`python -m jobs.worker` against the test services and both sandboxes; stopped after the test."""
    c = app.config
    env = subprocess_env(
        CLINIKO_API_URL=c["CLINIKO_API_URL"], XERO_CLIENT_ID=c["XERO_CLIENT_ID"],
        XERO_CLIENT_SECRET=c["XERO_CLIENT_SECRET"], XERO_TOKEN_URL=c["XERO_TOKEN_URL"],
        XERO_AUTHORIZE_URL=c["XERO_AUTHORIZE_URL"], XERO_REVOKE_URL=c["XERO_REVOKE_URL"],
        XERO_CONNECTIONS_URL=c["XERO_CONNECTIONS_URL"], XERO_API_URL=c["XERO_API_URL"],
        XERO_REDIRECT_URI=c["XERO_REDIRECT_URI"], LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def test_backfill_progress_reaches_100_then_dashboard(page, clinic, worker):
    pid = clinic.practice.id
    page.goto("/login")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/backfill/{pid}/")
    page.get_by_label("Invoices issued on or after").fill((date.today() - timedelta(days=400)).isoformat())
    page.get_by_role("button", name="Start backfill").click()
    expect(page.get_by_text("started.")).to_have_count(1)
    bar = page.get_by_test_id("backfill-bar")
    # The page is not reloaded: backfill.js updates the bar from the JSON endpoint.
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=50_000)
    expect(page.get_by_test_id("backfill-label")).to_have_text("Complete")
    expect(page.get_by_test_id("bf-remaining")).to_have_text("0")
    assert int(page.get_by_test_id("bf-synced").inner_text()) > 0
    assert worker.poll() is None, worker.stderr.read().decode()[-2000:]

    page.goto("/")
    card = page.get_by_test_id("practice-demo")
    expect(card.get_by_test_id("xero-state")).to_contain_text("Demo Clinic Pty Ltd")
    expect(card.get_by_test_id(f"chart-hours-{pid}")).to_be_visible()
    synced = int(card.get_by_test_id("count-synced").inner_text())
    assert synced > 0
    assert card.get_by_test_id("count-synced").get_attribute("href") == f"/jobs/?practice={pid}&state=synced"
    page.set_viewport_size({"width": 1400, "height": 900})
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
