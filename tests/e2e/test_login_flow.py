"""In a real browser: sign in, see the dashboard, sign out; wrong password; support refused."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import sign_in

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def test_sign_in_see_dashboard_sign_out(page, make_user, make_practice):
    make_practice("demo-clinic", name="Demo Clinic")
    make_user("admin@example.com")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/"))
    sign_in(page, "admin@example.com")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_contain_text("admin@example.com (admin)")
    expect(page.get_by_test_id("practice-demo-clinic")).to_contain_text("Demo Clinic")
    expect(page.get_by_test_id("practice-demo-clinic")).to_contain_text("sync off")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    # No script was blocked by the Content-Security-Policy.
    assert not [e for e in page.console_errors if "Content Security Policy" in e]


def test_wrong_password_shows_an_error(page, make_user):
    make_user("admin@example.com")
    sign_in(page, "admin@example.com", "not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login"))


def test_support_user_cannot_open_admin_only_page(page, make_user):
    make_user("support@example.com", role="support")
    sign_in(page, "support@example.com")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    response = page.goto("/users/")
    assert response.status == 403
    expect(page.get_by_text("Your role does not allow this page or action.")).to_be_visible()


def test_admin_sees_users_screen(page, make_user):
    make_user("admin@example.com")
    make_user("support@example.com", role="support")
    sign_in(page, "admin@example.com")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("cell", name="support@example.com")).to_be_visible()
