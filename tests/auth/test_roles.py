"""Roles: support users cannot open admin-only screens; the CLI creates users."""

from webapp.extensions import db
from webapp.models import User

PASSWORD = "correct horse battery"


def test_support_user_gets_403_on_admin_only_page(web, make_user):
    make_user("support@example.com", role="support")
    web.login("support@example.com", PASSWORD)
    assert web.client.get("/").status_code == 200
    response = web.client.get("/users/")
    assert response.status_code == 403
    assert "Your role does not allow" in response.get_data(as_text=True)


def test_admin_sees_users(web, make_user):
    make_user()
    make_user("support@example.com", role="support")
    web.login("admin@example.com", PASSWORD)
    page = web.client.get("/users/")
    assert page.status_code == 200
    assert "support@example.com" in page.get_data(as_text=True)


def test_anonymous_admin_page_redirects_to_login_with_next(client):
    response = client.get("/users/")
    assert response.status_code == 302
    assert "/login?next=/users/" in response.headers["Location"]


def test_practice_scoped_user_sees_only_their_practice(web, make_user, make_practice):
    make_practice("north", name="North Clinic")
    make_practice("south", name="South Clinic")
    make_user("north@example.com", role="support", practice_slug="north")
    web.login("north@example.com", PASSWORD)
    html = web.client.get("/").get_data(as_text=True)
    assert "North Clinic" in html and "South Clinic" not in html


def test_cli_creates_user(runner):
    result = runner.invoke(args=["users", "create", "Ops@Example.com", "--role", "admin", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    user = db.session.query(User).one()
    assert (user.email, user.role) == ("Ops@Example.com", "admin")


def test_cli_refuses_duplicate_and_weak_password(runner, make_user):
    make_user("ops@example.com")
    result = runner.invoke(args=["users", "create", "OPS@example.com", "--password", PASSWORD])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(args=["users", "create", "new@example.com", "--password", "short"])
    assert result.exit_code != 0 and "at least 10 characters" in result.output
    assert db.session.query(User).count() == 1


def test_cli_refuses_unknown_practice(runner):
    result = runner.invoke(args=["users", "create", "a@example.com", "--practice", "nope", "--password", PASSWORD])
    assert result.exit_code != 0 and "No practice with slug 'nope'" in result.output
