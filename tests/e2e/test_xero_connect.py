"""In a real browser: connect a practice to (sandbox) Xero through its login and consent pages, choose
the default accounts, turn sync on, then disconnect."""

import re

import pytest
from playwright.sync_api import expect

from sandbox.xero.fixtures import DEMO_ORG_NAME, SECOND_ORG_NAME
from tests.support.browser import sign_in

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
ARCHIVED_ACCOUNT = "250"  # "Consulting Revenue (old)", ARCHIVED in sandbox/xero/fixtures.py


def option_values(select):
    return select.locator("option").evaluate_all("els => els.map(e => e.value)")


@pytest.fixture
def browser_xero(xero_app, live_server, xero_sandbox):
    """The app served live, pointed at the sandbox, with Xero calling back to the live server."""
    xero_app.config["XERO_REDIRECT_URI"] = f"{live_server}/xero/callback"
    return xero_sandbox


def test_connect_choose_defaults_enable_and_disconnect(page, live_server, browser_xero, make_user, make_practice):
    sandbox = browser_xero
    make_practice("north", name="North Clinic")
    make_user("admin@example.com")
    sign_in(page, "admin@example.com")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    # Practices → the practice → Connect to Xero.
    page.get_by_role("link", name="Practices").click()
    page.get_by_role("link", name="North Clinic").click()
    expect(page.get_by_text("Not connected to Xero")).to_be_visible()
    page.get_by_role("link", name="Connect to Xero").click()

    # At (sandbox) Xero: sign in.
    expect(page).to_have_url(re.compile("^" + re.escape(sandbox) + "/identity/connect/authorize"))
    expect(page.get_by_role("heading", name="Log in to Xero")).to_be_visible()
    hint = page.get_by_text("Sandbox user:").inner_text()
    email, password = re.search(r"Sandbox user: (\S+) / (\S+)", hint).groups()
    assert email == "demo@example.com"
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()

    # Consent: pick the organisation, allow.
    organisation = page.get_by_label("Organisation")
    expect(organisation).to_be_visible()
    expect(organisation.locator("option")).to_have_text([DEMO_ORG_NAME, SECOND_ORG_NAME])
    organisation.select_option(label=DEMO_ORG_NAME)
    page.get_by_role("button", name="Allow access").click()

    # Back at our app, on the practice page.
    expect(page).to_have_url(re.compile("^" + re.escape(live_server) + r"/practices/\d+/$"))
    expect(page.get_by_role("alert").filter(has_text=f"Connected to {DEMO_ORG_NAME}")).to_be_visible()
    connection = page.locator("[data-testid^='xero-connection-']")
    expect(connection).to_have_count(1)
    expect(connection).to_contain_text(DEMO_ORG_NAME)
    expect(connection).to_contain_text("active")
    expect(page.get_by_text("Not connected to Xero")).to_have_count(0)
    expect(page.get_by_role("link", name="Connect to Xero")).to_have_count(0)

    # Default accounts: pickers filled from Xero, archived accounts not offered.
    sales = page.get_by_label("Default sales account")
    payment = page.get_by_label("Default payment account")
    rounding = page.get_by_label("Rounding account")
    sales_codes, payment_codes = option_values(sales), option_values(payment)
    assert "200" in sales_codes and "090" in payment_codes
    for codes in (sales_codes, payment_codes, option_values(rounding)):
        assert ARCHIVED_ACCOUNT not in codes
    expect(sales.locator("option", has_text="Consulting Revenue (old)")).to_have_count(0)
    sales.select_option("200")
    payment.select_option("090")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_role("alert")).to_have_text("Default accounts saved.")
    expect(page.get_by_test_id("defaults")).to_contain_text("Default sales account 200")
    expect(page.get_by_test_id("defaults")).to_contain_text("payment account 090")
    expect(page.get_by_label("Default sales account")).to_have_value("200")

    # Turn sync on.
    page.get_by_role("button", name="Turn sync on").click()
    expect(page.get_by_role("alert")).to_have_text("Sync is on.")
    expect(page.get_by_role("heading", name="North Clinic")).to_contain_text("sync on")
    expect(page.get_by_role("button", name="Pause sync")).to_be_visible()

    # Disconnect: the page says it is not connected any more, and offers to connect again.
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Disconnected from {DEMO_ORG_NAME}.")
    expect(page.get_by_role("heading", name="North Clinic")).to_contain_text("sync off")
    expect(page.get_by_role("link", name="Connect to Xero")).to_be_visible()
    expect(page.get_by_text("Not connected to Xero")).to_be_visible()

    assert not [e for e in page.console_errors if "Content Security Policy" in e]
