"""Sign-in (SPEC §13): scrypt hashes, cookie flags, a new session at login, `next` never leaves the site,
throttling per address and per account (the basic cases are in tests/auth/test_login.py; here: the edges).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, text

from tests.security.conftest import PASSWORD, signed_in, token_of
from webapp.models import User

HASH_FORMAT = re.compile(r"^scrypt:32768:8:1\$[A-Za-z0-9+/=]{8,}\$[0-9a-f]{128}$")


def session_of(app, response) -> dict:
    """The session stored in a response's cookie, decoded with the app's own serializer."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "="))
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    return app.session_interface.get_signing_serializer(app).loads(value)


# -- hashes ---------------------------------------------------------------------------------------------------

def test_passwords_are_salted_scrypt_and_stored_nowhere_in_plaintext(app, db, world, runner):
    """The CLI, the invitation page and login rehash all store scrypt (N=2^15, r=8, p=1) with a fresh salt."""
    result = runner.invoke(args=["users", "create", "cli@example.com", "--role", "support", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    web = signed_in(app, None)
    token = web.csrf_token(f"/invite/{world.a.invite_token}")
    accepted = web.client.post(f"/invite/{world.a.invite_token}",
                               data={"password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
    assert accepted.status_code == 302
    db.session.expire_all()
    hashes = {u.email: u.password_hash for u in db.session.scalars(select(User))}
    for email in ("cli@example.com", "staff.a@example.com"):
        assert HASH_FORMAT.match(hashes[email]), f"{email}: {hashes[email][:30]}…"
    assert hashes["cli@example.com"] != hashes["staff.a@example.com"]  # same password, different salt
    # The plaintext is in no column of any table.
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            sql = f"SELECT count(*) FROM {table.name} x WHERE x::text LIKE :p"  # noqa: S608 - our table names
            hits = conn.execute(text(sql),
                                {"p": f"%{PASSWORD}%"}).scalar()
            assert hits == 0, f"the password appears in {table.name}"


# -- cookies and sessions -------------------------------------------------------------------------------------

def test_session_cookie_flags_lifetime_and_a_new_session_at_login(app, world):
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    https = {"base_url": "https://localhost"}
    page = client.get("/login", **https)
    cookie = page.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie, f"session cookie lacks {flag}: {cookie}"
    # Something an attacker could plant in the anonymous session before handing it to the victim.
    with client.session_transaction(**https) as session:
        session["planted"] = "by an attacker"
        session["_user_id"] = str(world.b.user_id)  # a would-be fixation of another identity
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token},
                           headers={"Referer": "https://localhost/login"}, **https)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Lax"):
        assert flag in cookie
    session = session_of(app, response)
    assert "planted" not in session, "a value from the anonymous session survived login"
    assert session["_user_id"] == str(world.admin_id)
    assert session.get("csrf_token") != token  # a new CSRF secret too
    # A permanent session of at most 12 hours (PERMANENT_SESSION_LIFETIME).
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    ends = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert ends <= datetime.now(UTC) + timedelta(hours=12, minutes=1)
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] and app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_production_defaults_mark_cookies_secure():
    """Without the test override, cookies are Secure (SESSION_COOKIE_SECURE defaults to on)."""
    from webapp import config

    loaded = config.load(environ={"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x",
                                  "SECRET_KEY": "s", "TOKEN_ENCRYPTION_KEYS": "k",
                                  "CLINIKO_USER_AGENT": "t (t@example.com)"}, overrides={})
    assert loaded["SESSION_COOKIE_SECURE"] is True and loaded["REMEMBER_COOKIE_SECURE"] is True
    assert loaded["SESSION_COOKIE_HTTPONLY"] is True and loaded["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_disabled_user_session_ends_on_the_next_request(app, db, world):
    web = signed_in(app, "support_a")
    assert web.client.get("/").status_code == 200
    user = db.session.get(User, world.users["support_a"])
    user.active = False
    db.session.commit()
    response = web.client.get("/")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


# -- open redirects -------------------------------------------------------------------------------------------

EVIL = [
    "https://evil.example/", "http://evil.example", "HTTPS://evil.example", "//evil.example", "///evil.example",
    "////evil.example/x", "/\\evil.example", "\\\\evil.example", "\\/evil.example", "/\\/evil.example",
    "https:evil.example", "http:/evil.example", "https:///evil.example", "javascript:alert(1)",
    "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", " //evil.example", "\t//evil.example",
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/%09/evil.example\x00", "//evil.example@localhost",
    "http://localhost@evil.example", "//localhost.evil.example", "\x0e//evil.example", "evil.example",
    "//\u0435vil.example", "%2F%2Fevil.example", "/%2F%2Fevil.example\\",
]
# Odd but harmless: kept as a path on this site (percent-encoded), which is all that matters.
ODD_BUT_LOCAL = ["/\u3000/evil.example\x7f", "/%2F/evil.example", "/.evil.example", "/@evil.example"]


def assert_stays_here(location: str, target: str) -> None:
    parts = urlsplit(location)
    assert parts.scheme in ("", "http", "https") and parts.netloc in ("", "localhost"), f"{target!r} → {location!r}"
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location, \
        f"{target!r} → {location!r}"
    assert not any(ord(ch) < 33 or ord(ch) > 126 for ch in location), f"{target!r} → {location!r}"


def test_next_never_leads_off_the_site(app, world):
    """Every tricky value: after signing in (a sample: each costs a password check) and, already signed in,
    on /login?next=… (all of them; the same rule decides both)."""
    web = signed_in(app, None)
    sample = EVIL[::6]  # five: the per-account limit counts every sign-in, successful or not
    assert len(sample) == 5
    for target in sample:
        token = token_of(web)
        response = web.client.post("/login", query_string={"next": target},
                                   data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302
        assert response.headers["Location"] == "/", f"{target!r} → {response.headers['Location']!r}"
        web.client.post("/logout", data={"csrf_token": token_of(web)})
    assert web.login("admin.a@example.com", PASSWORD).status_code == 302
    for target in EVIL:
        response = web.client.get("/login", query_string={"next": target})
        assert response.status_code == 302
        assert response.headers["Location"] == "/", f"{target!r} → {response.headers['Location']!r}"
    for target in ODD_BUT_LOCAL:
        response = web.client.get("/login", query_string={"next": target})
        assert response.status_code == 302
        assert_stays_here(response.headers["Location"], target)


def test_local_next_targets_are_kept_and_stay_local(app, world):
    web = signed_in(app, None)
    token = token_of(web)
    for target in ("/jobs/?state=failed&practice=1", "/users/", f"/practices/{world.a.practice_id}/"):
        response = web.client.post("/login", query_string={"next": target},
                                   data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
        assert response.headers["Location"] == target
        assert_stays_here(response.headers["Location"], target)
        web.client.post("/logout", data={"csrf_token": token_of(web)})
        token = token_of(web)


def test_the_login_redirect_of_a_protected_page_carries_a_local_next(app, world):
    client = signed_in(app, None).client
    for path in ("/jobs/?state=failed", "/users/", f"/practices/{world.a.practice_id}/settings/"):
        location = client.get(path).headers["Location"]
        assert urlsplit(location).path == "/login"
        from urllib.parse import parse_qs

        target = parse_qs(urlsplit(location).query)["next"][0]
        assert target == path
        assert_stays_here(target, path)


# -- throttling: the edges (tests/auth/test_login.py covers the basic per-IP and per-account limits) ---------

def test_account_throttle_ignores_case_and_spaces_and_holds_even_with_the_right_password(app, world):
    web = signed_in(app, None)
    variants = ["admin@example.com", "ADMIN@example.com", " Admin@Example.com ", "admin@EXAMPLE.com",
                "admin@example.com"]
    for n, email in enumerate(variants):
        # Each from a new address, so only the per-account limit can apply.
        web.client.environ_base["REMOTE_ADDR"] = f"10.88.0.{n + 1}"
        assert web.login(email, "wrong password!!").status_code == 401
    web.client.environ_base["REMOTE_ADDR"] = "10.88.0.99"
    response = web.login("Admin@Example.COM", PASSWORD)
    assert response.status_code == 429
    assert "Retry-After" in response.headers or "X-RateLimit-Reset" in response.headers
    assert web.client.get("/").status_code == 302  # not signed in


def test_invitation_page_is_throttled_per_address(app, world):
    web = signed_in(app, None)
    path = f"/invite/{world.a.invite_token}"
    token = web.csrf_token(path)
    statuses = [web.client.post(path, data={"password": "x", "confirm": "y", "csrf_token": token}).status_code
                for _ in range(31)]
    assert statuses[:30] == [400] * 30 and statuses[30] == 429
