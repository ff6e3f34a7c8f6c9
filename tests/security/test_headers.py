"""Security headers (SPEC §13: CSP without inline script, frame denial, nosniff) on every kind of response.

The URL-map walks in test_route_walks.py check every response they get (every route × role) and the HTML
of every page for inline script; this file adds the responses no walk meets (error pages of every code,
unknown URLs, wrong methods, throttling, static files, JSON, CSV) and the exact policy."""

from __future__ import annotations

from tests.security.conftest import header_problems, inline_script_problems, signed_in
from webapp.security import CSP


def directives(csp: str) -> dict[str, set[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = set(words[1:])
    return out


def test_the_policy_allows_scripts_from_this_site_only():
    policy = directives(CSP)
    assert policy["script-src"] == {"'self'"}
    assert policy["default-src"] == {"'self'"}
    assert policy["object-src"] == {"'none'"}
    assert policy["frame-ancestors"] == {"'none'"}
    assert policy["base-uri"] == {"'self'"} and policy["form-action"] == {"'self'"}
    # 'unsafe-inline' is allowed for styles only (Bootstrap's style attributes), never for scripts.
    assert "'unsafe-inline'" not in policy["script-src"] | policy["default-src"]


def test_error_pages_static_json_and_csv_carry_the_headers(app, world, clients):
    anonymous = clients["anonymous"].client
    admin = clients["admin"].client
    support = clients["support"].client
    responses = {
        "404 unknown URL": anonymous.get("/no/such/page"),
        "404 signed in": admin.get("/jobs/999999/"),
        "405 wrong method": anonymous.get("/logout"),
        "400 no CSRF token": anonymous.post("/login", data={"email": "a@example.com", "password": "x"}),
        "403 support on users": support.get("/users/"),
        "302 to login": anonymous.get("/jobs/"),
        "static file": anonymous.get("/static/backfill.js"),
        "admin static file": anonymous.get("/static/admin/admin/js/helpers.js"),
        "JSON health": anonymous.get("/healthz"),
        "JSON progress": admin.get(f"/backfill/{world.a.practice_id}/{world.a.backfill_id}/progress.json"),
        "CSV export": admin.get("/jobs/export.csv", buffered=True),
        "JSON 404": admin.get("/jobs/999999/", headers={"Accept": "application/json"}),
    }
    for label, response in responses.items():
        assert not header_problems(response), f"{label} ({response.status_code}): {header_problems(response)}"
        if response.mimetype == "text/html":
            assert not inline_script_problems(response.get_data(as_text=True)), label
    assert responses["static file"].status_code == 200
    assert responses["JSON 404"].status_code == 404 and responses["JSON 404"].is_json


def test_throttled_login_and_https_responses_carry_the_headers(app, world):
    web = signed_in(app, None)
    for _ in range(5):
        web.login("nobody@example.com", "wrong password!!")
    throttled = web.login("nobody@example.com", "wrong password!!")
    assert throttled.status_code == 429
    assert not header_problems(throttled)
    assert not inline_script_problems(throttled.get_data(as_text=True))
    # With Secure cookies (production), HSTS is sent too.
    app.config["SESSION_COOKIE_SECURE"] = True
    response = app.test_client().get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(response.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 180 * 86400
