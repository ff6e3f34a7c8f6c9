"""In a real browser: map a Cliniko billable item to another Xero account on the Mappings screen, see the
confirmation and the failed invoice it fixes re-queued; screenshot for the docs."""

from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.admin.test_settings import failed_row, small_clinic
from tests.support.engine import PASSWORD
from webapp.extensions import db
from webapp.models import ClinikoRecord, Mapping, SyncJob

pytestmark = pytest.mark.e2e
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "mappings.png"


@pytest.fixture
def clinic(app, web, make_user, make_practice, xero_app, xero_sandbox):
    with small_clinic(app, web, make_user, make_practice, xero_sandbox) as clinic:
        yield clinic


def test_change_a_billable_item_account(page, live_server, clinic):
    practice = clinic.practice
    item = db.session.scalars(select(ClinikoRecord).where(
        ClinikoRecord.practice_id == practice.id, ClinikoRecord.kind == "billable_item")
        .order_by(ClinikoRecord.archived, ClinikoRecord.name)).first()
    row = failed_row(practice, "mapping", "8001")

    failures = []
    page.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)
    page.goto("/login")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Settings", exact=True).first.click()
    page.get_by_test_id("settings-practices").get_by_role("link", name="Mappings").click()
    expect(page.get_by_role("heading", name=practice.name)).to_be_visible()

    table = page.get_by_test_id("table-billable_item")
    line = page.get_by_test_id(f"row-billable_item-{item.cliniko_id}")
    expect(line).to_contain_text("default: 200 · Sales")
    select_box = line.get_by_test_id(f"account_code__{item.cliniko_id}")
    values = select_box.locator("option").evaluate_all("els => els.map(e => e.value)")
    assert "250" not in values  # archived in Xero
    select_box.select_option("260")
    table.get_by_role("button", name="Save billable items").click()

    expect(page.locator(".alert-info")).to_contain_text(
        "Saved billable items: 1 mapped, 0 changed, 0 back to the default. 1 failed invoice re-queued.")
    line = page.get_by_test_id(f"row-billable_item-{item.cliniko_id}")
    expect(line.get_by_test_id(f"account_code__{item.cliniko_id}")).to_have_value("260")
    assert [u for u in failures if not u.endswith("/favicon.ico")] == []
    # The only console error allowed is the browser's own /favicon.ico request (not seen by page.on).
    assert len([e for e in page.console_errors if "404" not in e]) == 0 and len(page.console_errors) <= 1
    db.session.expire_all()
    mapping = db.session.scalar(select(Mapping).where(Mapping.practice_id == practice.id,
                                                      Mapping.cliniko_id == item.cliniko_id))
    assert mapping.account_code == "260"
    assert db.session.get(SyncJob, row.id).status == "pending"
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOT), full_page=False)
