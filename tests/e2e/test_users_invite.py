"""In a real browser: an admin invites a support user, who sets a password through the link once, signs
in, and cannot open Users; the spent link is refused."""


import pytest
from playwright.sync_api import expect

from tests.support.browser import sign_in

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a fresh passphrase 42"


def test_admin_invites_support_user_who_sets_password_and_signs_in(browser, live_server, page, make_user,
                                                                   make_practice):
    make_practice("demo-clinic", name="Demo Clinic")
    make_user("admin@example.com")
    sign_in(page, "admin@example.com")
    page.get_by_role("link", name="Users").click()
    page.get_by_role("link", name="Invite a user").click()
    page.get_by_label("Email").fill("helper@example.com")
    page.get_by_label("Role").select_option("support")
    page.get_by_label("Practice scope").select_option(label="Demo Clinic")
    page.get_by_role("button", name="Invite").click()
    link = page.get_by_test_id("invite-link").input_value()
    assert link.startswith(live_server + "/invite/")
    page.get_by_role("link", name="Back to users").click()
    expect(page.get_by_role("cell", name="helper@example.com")).to_be_visible()
    expect(page.get_by_text("invited", exact=True)).to_be_visible()

    # The invited person, in their own browser.
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(10_000)
    other = context.new_page()
    try:
        other.goto(link)
        expect(other.get_by_text("Choose a password for")).to_contain_text("helper@example.com")
        other.get_by_label("New password").fill(NEW_PASSWORD)
        other.get_by_label("Repeat password").fill(NEW_PASSWORD)
        other.get_by_role("button", name="Set password").click()
        expect(other.get_by_text("Your password is set. Sign in with it.")).to_be_visible()
        sign_in(other, "helper@example.com", NEW_PASSWORD)
        expect(other.get_by_test_id("current-user")).to_contain_text("helper@example.com (support)")
        expect(other.get_by_role("link", name="Users")).to_have_count(0)
        expect(other.get_by_role("link", name="Activity")).to_have_count(1)
        assert other.goto("/users/").status == 403
        # The link works once.
        response = other.goto(link)
        assert response.status == 404
        expect(other.get_by_role("alert")).to_contain_text("This link is not valid")
    finally:
        context.close()

    page.reload()
    expect(page.get_by_text("active", exact=True).first).to_be_visible()
    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("cell", name="user.invite_accepted")).to_be_visible()
    assert not [e for e in page.console_errors if "Content Security Policy" in e]
