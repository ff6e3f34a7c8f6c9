"""Sandbox Xero identity: authorize page, token grants, rotation/grace/expiry, revocation, /connections."""

import re
from urllib.parse import parse_qs, urlparse

import requests

from tests.sandbox.conftest import REDIRECT_URI, TIMEOUT


def _refresh(xero, token):
    return xero.token({"grant_type": "refresh_token", "refresh_token": token})


def test_auto_consent_code_exchange_gives_30_minute_tokens(xero):
    tokens = xero.tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["access_token"].count(".") == 2 and tokens["refresh_token"]
    assert xero.api("GET", "Organisation").status_code == 200


def test_access_token_expires_after_1800_seconds(xero):
    xero.control("clock", {"advance_seconds": 1799})
    assert xero.api("GET", "Accounts").status_code == 200
    xero.control("clock", {"advance_seconds": 2})
    response = xero.api("GET", "Accounts")
    assert response.status_code == 401
    body = response.json()
    assert body["Title"] == "Unauthorized" and body["Detail"].startswith("TokenExpired")
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}


def test_refresh_rotates_and_old_token_has_30_minute_grace(xero):
    first = xero.tokens["refresh_token"]
    rotated = _refresh(xero, first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    xero.control("clock", {"advance_seconds": 29 * 60})
    again = _refresh(xero, first)
    assert again.status_code == 200
    assert again.json()["refresh_token"] == second
    xero.control("clock", {"advance_seconds": 2 * 60})
    expired = _refresh(xero, first)
    assert expired.status_code == 400 and expired.json() == {"error": "invalid_grant"}
    assert _refresh(xero, second).status_code == 200


def test_unused_refresh_token_dies_after_60_days(xero):
    xero.control("clock", {"advance_seconds": 59 * 86400})
    fresh = _refresh(xero, xero.tokens["refresh_token"]).json()["refresh_token"]
    xero.control("clock", {"advance_seconds": 60 * 86400 + 60})
    response = _refresh(xero, fresh)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_code_is_single_use_and_bound_to_redirect_uri(xero):
    code = xero.code_from(requests.get(xero.authorize_url(), allow_redirects=False, timeout=TIMEOUT))
    wrong = xero.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost:9999/other"}
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = xero.code_from(requests.get(xero.authorize_url(), allow_redirects=False, timeout=TIMEOUT))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    assert xero.token(data).status_code == 200
    reused = xero.token(data)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_client_authentication_and_grant_type(xero):
    bad = xero.token(
        {"grant_type": "refresh_token", "refresh_token": xero.tokens["refresh_token"]},
        auth=("sandbox-client", "wrong"),
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    other = xero.token({"grant_type": "password"})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def test_authorize_refuses_unknown_redirect_and_client(xero_make):
    xero = xero_make(connect=False, redirect_uris=("https://app.example.com/xero/callback",))
    response = requests.get(xero.authorize_url(), allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400 and "Location" not in response.headers
    ok = requests.get(
        xero.authorize_url(redirect_uri="https://app.example.com/xero/callback"),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert ok.status_code == 302
    unknown = requests.get(xero.authorize_url(client_id="nope"), allow_redirects=False, timeout=TIMEOUT)
    assert unknown.status_code == 400


def test_any_localhost_redirect_when_none_registered(xero_make):
    xero = xero_make(connect=False)
    for uri in ("http://127.0.0.1:5000/cb", "http://localhost/cb"):
        assert (
            requests.get(xero.authorize_url(redirect_uri=uri), allow_redirects=False, timeout=TIMEOUT).status_code
            == 302
        )
    evil = requests.get(
        xero.authorize_url(redirect_uri="http://localhost.evil.com/cb"),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert evil.status_code == 400


def _form_fields(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_authorize_page_login_consent_and_organisation_choice(xero_make):
    xero = xero_make(connect=False, auto_consent=False)
    page = requests.get(xero.authorize_url(), timeout=TIMEOUT)
    assert page.status_code == 200 and "Log in" in page.text
    fields = _form_fields(page.text)
    action = xero.base + "/identity/connect/authorize"
    wrong = requests.post(action, data={**fields, "email": "demo@example.com", "password": "x"}, timeout=TIMEOUT)
    assert "incorrect" in wrong.text
    consent = requests.post(
        action, data={**fields, "email": "demo@example.com", "password": "sandbox"}, timeout=TIMEOUT
    )
    assert "Allow access" in consent.text
    assert "Demo Clinic Pty Ltd" in consent.text and "Harbourside Physio Pty Ltd" in consent.text
    consent_fields = _form_fields(consent.text)
    done = requests.post(
        action,
        data={**consent_fields, "tenant_id": xero.second_tenant_id, "decision": "allow"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    code = xero.code_from(done)
    tokens = xero.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}).json()
    xero.tokens = tokens
    connections = requests.get(
        xero.base + "/connections",
        headers={"Authorization": "Bearer " + tokens["access_token"]},
        timeout=TIMEOUT,
    ).json()
    assert [c["tenantName"] for c in connections] == ["Harbourside Physio Pty Ltd"]
    assert xero.api("GET", "Organisation", tenant_id=xero.second_tenant_id).status_code == 200
    assert xero.api("GET", "Organisation").status_code == 403
    denied = requests.post(action, data={**consent_fields, "decision": "deny"}, allow_redirects=False, timeout=TIMEOUT)
    assert parse_qs(urlparse(denied.headers["Location"]).query)["error"] == ["access_denied"]


def test_connections_shape_delete_and_forbidden_tenant(xero):
    headers = {"Authorization": "Bearer " + xero.tokens["access_token"]}
    response = requests.get(xero.base + "/connections", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200
    assert "X-AppMinLimit-Remaining" in response.headers and "X-MinLimit-Remaining" not in response.headers
    [connection] = response.json()
    assert set(connection) == {
        "id",
        "authEventId",
        "tenantId",
        "tenantType",
        "tenantName",
        "createdDateUtc",
        "updatedDateUtc",
    }
    assert connection["tenantName"] == "Demo Clinic Pty Ltd" and connection["tenantType"] == "ORGANISATION"
    assert xero.api("GET", "Accounts", tenant_id=xero.second_tenant_id).status_code == 403
    missing = xero.api("GET", "Accounts", headers={"xero-tenant-id": ""})
    assert missing.status_code == 403 and missing.json()["Detail"] == "AuthenticationUnsuccessful"
    gone = requests.delete(xero.base + "/connections/" + connection["id"], headers=headers, timeout=TIMEOUT)
    assert gone.status_code == 204
    assert (
        requests.delete(xero.base + "/connections/" + connection["id"], headers=headers, timeout=TIMEOUT).status_code
        == 404
    )
    assert xero.api("GET", "Accounts").status_code == 403


def test_bad_bearer_is_401(xero):
    response = xero.api("GET", "Accounts", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401 and response.json()["Detail"] == "AuthenticationUnsuccessful"


def test_revocation_kills_refresh_token_and_connections(xero):
    response = requests.post(
        xero.base + "/connect/revocation",
        data={"token": xero.tokens["refresh_token"]},
        auth=("sandbox-client", "sandbox-secret"),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert _refresh(xero, xero.tokens["refresh_token"]).json() == {"error": "invalid_grant"}
    assert xero.api("GET", "Accounts").status_code == 401
    assert xero.state()["identity"]["connections"] == []
