"""Sandbox Xero fixtures and helpers that walk its consent pages over HTTP."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.servers import serve


@pytest.fixture
def xero_sandbox():
    """Sandbox Xero (consent page shown) on a free port; yields its base URL."""
    from sandbox.xero.app import create_app

    with serve(create_app(window_seconds=60)) as url:
        yield url


@pytest.fixture
def xero_app(app, xero_sandbox):
    """The app pointed at the sandbox (as `make demo` does)."""
    app.config.update(
        XERO_CLIENT_ID="sandbox-client",
        XERO_CLIENT_SECRET="sandbox-secret",
        XERO_AUTHORIZE_URL=f"{xero_sandbox}/identity/connect/authorize",
        XERO_TOKEN_URL=f"{xero_sandbox}/connect/token",
        XERO_REVOKE_URL=f"{xero_sandbox}/connect/revocation",
        XERO_CONNECTIONS_URL=f"{xero_sandbox}/connections",
        XERO_API_URL=f"{xero_sandbox}/api.xro/2.0",
        XERO_REDIRECT_URI="http://localhost/xero/callback",
    )
    return app


def consent_at_sandbox(authorize_url: str, org_name: str | None = None, decision: str = "allow") -> str:
    """Walk the sandbox's sign-in and consent pages over HTTP as a person would; return the callback URL."""
    http = requests.Session()
    page = http.get(authorize_url, timeout=10, allow_redirects=False)
    if page.status_code in (302, 303):  # auto consent
        return page.headers["Location"]
    form = _form_fields(page.text)
    hint = re.search(r"Sandbox user: (\S+) / (\S+)</small>", page.text)
    form.update(email=hint.group(1), password=hint.group(2))
    page = http.post(_action(authorize_url, page.text), data=form, timeout=10, allow_redirects=False)
    assert page.status_code == 200, page.text[:500]
    form = _form_fields(page.text)
    if org_name:
        match = re.search(r'<option value="([^"]+)">' + re.escape(org_name) + "</option>", page.text)
        assert match, f"{org_name} not offered on the consent page"
        form["tenant_id"] = match.group(1)
    form["decision"] = decision
    response = http.post(_action(authorize_url, page.text), data=form, timeout=10, allow_redirects=False)
    assert response.status_code in (302, 303), response.text[:500]
    return response.headers["Location"]


def _action(authorize_url: str, html: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', html)
    base = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    action = match.group(1).replace("&amp;", "&") if match else urlsplit(authorize_url).path
    return action if action.startswith("http") else base + action


def _form_fields(html: str) -> dict:
    fields = {}
    for tag in re.findall(r"<input[^>]+>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or (kind and kind.group(1) in ("radio", "checkbox") and "checked" not in tag):
            continue
        fields[name.group(1)] = value.group(1).replace("&amp;", "&") if value else ""
    return fields


def callback_path(url: str) -> str:
    """The path and query of a callback URL, for the Flask test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
