"""Login: success, failure, throttling, CSRF, safe `next`, session cookie flags, rehash."""

import pytest

from webapp.auth.passwords import hash_password, needs_rehash
from webapp.auth.redirects import safe_next
from webapp.extensions import db
from webapp.models import AuditEntry, User

PASSWORD = "correct horse battery"


def test_login_page_renders_with_a_csrf_token(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="csrf_token"' in page.get_data(as_text=True)


def test_dashboard_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_login_success_goes_to_dashboard_and_audits(web, make_user):
    make_user("Admin@Example.com")
    response = web.login("admin@example.com", PASSWORD)  # email is case-insensitive
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = web.client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.get_data(as_text=True)
    user = db.session.query(User).one()
    assert user.last_login_at is not None and user.failed_login_count == 0
    assert db.session.query(AuditEntry).filter_by(action="login").count() == 1


def test_wrong_password_is_refused_with_a_message_and_counted(web, make_user):
    make_user()
    response = web.login("admin@example.com", "wrong password!!")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert db.session.query(User).one().failed_login_count == 1
    assert web.client.get("/").status_code == 302


def test_unknown_email_gets_the_same_message(web):
    response = web.login("nobody@example.com", PASSWORD)
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_disabled_user_cannot_log_in(web, make_user):
    user = make_user()
    user.active = False
    db.session.commit()
    assert web.login("admin@example.com", PASSWORD).status_code == 401


def test_post_without_csrf_token_is_refused(client, make_user):
    make_user()
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_needs_post_with_csrf(web, make_user):
    make_user()
    web.login("admin@example.com", PASSWORD)
    assert web.client.get("/logout").status_code == 405
    assert web.client.post("/logout").status_code == 400  # no token
    token = web.csrf_token("/")
    assert web.client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert web.client.get("/").status_code == 302


def test_throttled_per_account(web, make_user):
    make_user()
    for _ in range(5):
        assert web.login("admin@example.com", "wrong password!!").status_code == 401
    # Sixth try inside the window is refused even with the right password.
    response = web.login("admin@example.com", PASSWORD)
    assert response.status_code == 429
    assert "Too many login attempts for this account" in response.get_data(as_text=True)
    # Another account from the same address is not blocked by this one.
    make_user("other@example.com")
    assert web.login("other@example.com", PASSWORD).status_code == 302


def test_throttled_per_ip(web, make_user):
    make_user()
    ip = {"REMOTE_ADDR": "10.9.8.7"}
    statuses = [web.login(f"user{n}@example.com", "x" * 12, environ=ip).status_code for n in range(21)]
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    # A different address can still sign in.
    assert web.login("admin@example.com", PASSWORD, environ={"REMOTE_ADDR": "10.0.0.1"}).status_code == 302


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "http:/x", "/%0a/x\x01"],
)
def test_next_refuses_other_sites(web, make_user, target):
    make_user()
    response = web.login("admin@example.com", PASSWORD, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_allows_local_paths(web, make_user):
    make_user()
    response = web.login("admin@example.com", PASSWORD, next_url="/users/")
    assert response.headers["Location"] == "/users/"


def test_safe_next_unit():
    assert safe_next("/jobs?state=failed") == "/jobs?state=failed"
    assert safe_next(None) == "/"
    assert safe_next("///evil") == "/"


def test_session_cookie_flags_and_rotation_at_login(app, make_user):
    import re

    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    make_user()
    https = {"base_url": "https://localhost"}
    page = client.get("/login", **https)
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    before = cookie.split(";")[0]
    response = client.post(
        "/login",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token},
        headers={"Referer": "https://localhost/login"},
        **https,
    )
    assert response.status_code == 302
    after = response.headers["Set-Cookie"].split(";")[0]
    assert after != before  # a new session at login


def test_security_headers(client):
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_old_hash_parameters_are_upgraded_on_login(web, make_user):
    user = make_user()
    from werkzeug.security import generate_password_hash

    user.password_hash = generate_password_hash(PASSWORD, method="scrypt:16384:8:1")
    db.session.commit()
    assert needs_rehash(user.password_hash)
    assert web.login("admin@example.com", PASSWORD).status_code == 302
    db.session.expire_all()
    assert not needs_rehash(db.session.query(User).one().password_hash)
    assert hash_password("x" * 12).startswith("scrypt:32768:8:1$")


def test_requests_that_do_not_change_the_session_do_not_resend_it(web, make_user):
    # Otherwise a concurrent request (a static file, a missing favicon) writes back an older session
    # over one that just stored the OAuth state, and the Xero callback is refused.
    make_user()
    assert web.login("admin@example.com", PASSWORD).status_code == 302
    first = web.client.get("/")  # the first page stores the CSRF secret: that change is sent
    assert "session=" in first.headers.get("Set-Cookie", "")
    for path in ("/static/app.css", "/favicon.ico", "/"):
        response = web.client.get(path)
        assert "session=" not in response.headers.get("Set-Cookie", ""), path
