"""Sandbox Xero: extra organisations (POST /_sandbox/organisations) and the app window (GET /_sandbox/app-calls)."""

import re
from urllib.parse import parse_qs, urlparse

import requests

from tests.sandbox.conftest import REDIRECT_URI, TIMEOUT


def _add(xero, body: dict) -> requests.Response:
    return requests.post(f"{xero.base}/_sandbox/organisations", json=body, timeout=TIMEOUT)


def test_new_organisation_with_its_own_user_connects_through_login_and_consent(xero_make):
    xero = xero_make(connect=False, auto_consent=False)
    made = _add(xero, {"name": "Clinic 7 Pty Ltd", "user": {"email": "owner7@example.com", "password": "pw7"}})
    assert made.status_code == 201, made.text
    tenant_id = made.json()["tenant_id"]
    org = next(o for o in xero.state()["organisations"] if o["tenant_id"] == tenant_id)
    assert org["name"] == "Clinic 7 Pty Ltd" and org["counts"]["invoices"] == 0

    # The usual login + consent pages; the new user sees only their organisation.
    query = parse_qs(urlparse(xero.authorize_url()).query)
    form = {k: v[0] for k, v in query.items()}
    page = requests.post(xero.base + "/identity/connect/authorize", data={
        **form, "step": "login", "email": "owner7@example.com", "password": "pw7"}, timeout=TIMEOUT)
    assert page.status_code == 200 and "Clinic 7 Pty Ltd" in page.text
    ticket = re.search(r'name="login_ticket" value="([^"]+)"', page.text).group(1)
    assert f'value="{tenant_id}"' in page.text
    back = requests.post(xero.base + "/identity/connect/authorize", data={
        **form, "step": "consent", "login_ticket": ticket, "tenant_id": tenant_id, "decision": "allow"},
        allow_redirects=False, timeout=TIMEOUT)
    code = xero.code_from(back)
    tokens = xero.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}).json()
    xero.tokens = tokens
    rows = requests.get(xero.base + "/connections", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                        timeout=TIMEOUT).json()
    assert [(r["tenantId"], r["tenantName"]) for r in rows] == [(tenant_id, "Clinic 7 Pty Ltd")]

    # The new organisation has the fixture chart of accounts and takes documents.
    accounts = xero.api("GET", "Accounts", tenant_id=tenant_id).json()["Accounts"]
    assert {"200", "090", "860"} <= {a["Code"] for a in accounts}
    response = xero.api("PUT", "Invoices", tenant_id=tenant_id, json={"Invoices": [xero.invoice("C7-1")]})
    assert response.status_code == 200, response.text
    # …and not the demo organisation: that user never connected it.
    assert xero.api("GET", "Invoices", tenant_id=xero.tenant_id).status_code == 403


def test_organisation_for_the_default_user_and_refusals(xero):
    made = _add(xero, {"name": "Third Clinic", "tenant_id": "A3B6C0DE-5F1E-4C8A-9D2B-7E6F00000099"})
    assert made.status_code == 201
    assert made.json()["tenant_id"] == "a3b6c0de-5f1e-4c8a-9d2b-7e6f00000099"
    assert made.json()["email"] == "demo@example.com"
    assert len(xero.state()["organisations"]) == 3
    assert _add(xero, {"name": "Again", "tenant_id": made.json()["tenant_id"]}).status_code == 400
    assert _add(xero, {}).status_code == 400
    assert _add(xero, {"name": "X", "tenant_id": "nope"}).status_code == 400
    assert _add(xero, {"name": "X", "user": {"email": "new@example.com"}}).status_code == 400
    xero.control("reset")
    assert len(xero.state()["organisations"]) == 2


def test_app_calls_counts_the_current_app_window(xero_make):
    xero = xero_make(window_seconds=3600)
    before = requests.get(f"{xero.base}/_sandbox/app-calls", timeout=TIMEOUT).json()
    assert before["window_seconds"] == 3600 and before["app_minute_limit"] == 10000
    for _ in range(3):
        assert xero.api("GET", "Accounts").status_code == 200
    after = requests.get(f"{xero.base}/_sandbox/app-calls", timeout=TIMEOUT).json()
    app = after["apps"]["sandbox-client"]
    assert app["count"] >= 3 and app["window"] == app["current_window"]
    assert app["count"] - before["apps"].get("sandbox-client", {}).get("count", 0) == 3
