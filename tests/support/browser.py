"""Browser-test steps shared by tests/e2e (Playwright pages)."""

from __future__ import annotations

from playwright.sync_api import expect

PASSWORD = "correct horse battery"


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    """Fill and submit the login form (the outcome is the caller's to check)."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def signed_in(page, email: str, password: str = PASSWORD) -> None:
    """Sign in and wait until the page shows the signed-in user."""
    sign_in(page, email, password)
    expect(page.get_by_test_id("current-user")).to_contain_text(email)
