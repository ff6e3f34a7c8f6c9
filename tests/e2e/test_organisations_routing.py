"""In a real browser: connect a second (sandbox) Xero organisation to a practice, then route a Cliniko
business to it on the Routing screen."""

import re

import pytest
from playwright.sync_api import expect

from sandbox.xero.fixtures import DEMO_ORG_NAME, SECOND_ORG_NAME
from tests.support.browser import sign_in
from webapp.extensions import db
from webapp.models import BusinessRoute, ClinikoRecord, XeroConnection

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def consent(page, sandbox, org_name):
    """Sign in at sandbox Xero (when asked) and allow access to one organisation."""
    expect(page).to_have_url(re.compile("^" + re.escape(sandbox) + "/identity/connect/authorize"))
    hint = page.get_by_text("Sandbox user:").inner_text()
    email, password = re.search(r"Sandbox user: (\S+) / (\S+)", hint).groups()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Organisation").select_option(label=org_name)
    page.get_by_role("button", name="Allow access").click()


@pytest.fixture
def browser_xero(xero_app, live_server, xero_sandbox):
    xero_app.config["XERO_REDIRECT_URI"] = f"{live_server}/xero/callback"
    return xero_sandbox


def test_connect_a_second_organisation_and_route_a_business(page, live_server, browser_xero, make_user,
                                                           make_practice):
    sandbox = browser_xero
    practice = make_practice("north", name="North Clinic")
    for bid, name in (("11", "North Sydney"), ("12", "Manly")):
        db.session.add(ClinikoRecord(practice_id=practice.id, kind="business", cliniko_id=bid, name=name, data={}))
    db.session.commit()
    make_user("admin@example.com")
    sign_in(page, "admin@example.com")

    page.goto(f"/practices/{practice.id}/")
    page.get_by_role("link", name="Connect to Xero").click()
    consent(page, sandbox, DEMO_ORG_NAME)
    expect(page.get_by_role("alert").filter(has_text=f"Connected to {DEMO_ORG_NAME}")).to_be_visible()

    # A second organisation: the same pages; our app asks which one, marking the one already connected.
    page.get_by_role("link", name="Connect another Xero organisation").click()
    consent(page, sandbox, SECOND_ORG_NAME)
    expect(page.get_by_role("heading", name="Choose the Xero organisation for North Clinic")).to_be_visible()
    expect(page.get_by_text("(already connected to this practice)")).to_have_count(1)
    expect(page.get_by_label(SECOND_ORG_NAME)).to_be_checked()
    page.get_by_role("button", name="Use this organisation").click()
    expect(page.get_by_role("alert").filter(has_text=f"Connected to {SECOND_ORG_NAME}")).to_be_visible()
    connections = page.locator("[data-testid^='xero-connection-']")
    expect(connections).to_have_count(2)
    expect(connections.nth(0)).to_contain_text(DEMO_ORG_NAME)
    expect(connections.nth(0)).to_contain_text("default")
    expect(connections.nth(0)).to_contain_text("Businesses: Manly, North Sydney")
    expect(connections.nth(1)).to_contain_text(SECOND_ORG_NAME)
    expect(connections.nth(1)).to_contain_text("Businesses: none")

    # Route Manly to the second organisation.
    page.get_by_role("link", name="Route businesses").click()
    expect(page.get_by_test_id("routing-form")).to_contain_text("North Sydney")
    manly = page.get_by_test_id("route-12")
    expect(manly).to_have_value("")
    manly.select_option(label=SECOND_ORG_NAME)
    page.get_by_role("button", name="Save routing").click()
    expect(page.get_by_role("alert")).to_contain_text("Routing saved for 1 business. 0 rows not yet in Xero moved")
    expect(page.get_by_test_id("route-12")).to_have_value(str(db.session.scalars(
        db.select(XeroConnection.id).where(XeroConnection.tenant_name == SECOND_ORG_NAME)).one()))

    page.get_by_role("link", name="Connections").click()
    expect(connections.nth(0)).to_contain_text("Businesses: North Sydney")
    expect(connections.nth(1)).to_contain_text("Businesses: Manly")
    db.session.expire_all()
    assert [r.cliniko_business_id for r in db.session.scalars(db.select(BusinessRoute))] == ["12"]
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
