"""Fixtures for the sandbox Xero tests: a served emulator and a small HTTP helper (all named xero_*)."""

import contextlib
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from sandbox.xero.app import create_app
from sandbox.xero.fixtures import DEMO_TENANT_ID, SECOND_TENANT_ID
from tests.support.servers import serve

TIMEOUT = 10
REDIRECT_URI = "http://localhost:8000/xero/callback"
SCOPE = "offline_access openid accounting.transactions accounting.contacts accounting.settings"


class XeroHandle:
    """A running sandbox Xero plus a connected token set for the demo organisation."""

    def __init__(self, base: str, app) -> None:
        self.base = base
        self.app = app
        self.sandbox = app.extensions["xero_sandbox"]
        self.http = requests.Session()
        self.tokens: dict = {}
        self.tenant_id = DEMO_TENANT_ID
        self.second_tenant_id = SECOND_TENANT_ID

    # -- OAuth ----------------------------------------------------------------------------------
    def authorize_url(self, **overrides) -> str:
        """The authorize URL with standard parameters."""
        params = {
            "response_type": "code",
            "client_id": "sandbox-client",
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "st4te",
        }
        params.update(overrides)
        return self.base + "/identity/connect/authorize?" + requests.compat.urlencode(params)

    def code_from(self, response) -> str:
        """The `code` from an authorize redirect."""
        assert response.status_code == 302, response.text
        query = parse_qs(urlparse(response.headers["Location"]).query)
        assert query["state"] == ["st4te"]
        return query["code"][0]

    def token(self, data: dict, auth=("sandbox-client", "sandbox-secret")):
        """POST /connect/token."""
        return requests.post(self.base + "/connect/token", data=data, auth=auth, timeout=TIMEOUT)

    def connect(self) -> dict:
        """Run the auto-consent flow and keep the token set."""
        response = requests.get(self.authorize_url(), allow_redirects=False, timeout=TIMEOUT)
        code = self.code_from(response)
        result = self.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI})
        assert result.status_code == 200, result.text
        self.tokens = result.json()
        return self.tokens

    def refresh(self) -> dict:
        """Refresh the token set (e.g. after moving the clock past the access token's life)."""
        result = self.token({"grant_type": "refresh_token", "refresh_token": self.tokens["refresh_token"]})
        assert result.status_code == 200, result.text
        self.tokens = result.json()
        return self.tokens

    # -- API --------------------------------------------------------------------------------------
    def headers(self, tenant_id: str | None = None, **extra) -> dict:
        """Bearer + tenant headers."""
        headers = {
            "Authorization": f"Bearer {self.tokens['access_token']}",
            "xero-tenant-id": tenant_id or self.tenant_id,
            "Accept": "application/json",
        }
        headers.update(extra)
        return headers

    def api(
        self,
        method: str,
        path: str,
        *,
        tenant_id: str | None = None,
        headers: dict | None = None,
        timeout: float = TIMEOUT,
        **kwargs,
    ):
        """Call /api.xro/2.0/<path> with the connected token."""
        merged = self.headers(tenant_id)
        merged.update(headers or {})
        return self.http.request(
            method, f"{self.base}/api.xro/2.0/{path.lstrip('/')}", headers=merged, timeout=timeout, **kwargs
        )

    def control(self, path: str, payload: dict | None = None):
        """POST a control endpoint and return its JSON."""
        response = requests.post(f"{self.base}/_sandbox/{path}", json=payload or {}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def state(self) -> dict:
        """GET /_sandbox/state."""
        return requests.get(f"{self.base}/_sandbox/state", timeout=TIMEOUT).json()

    # -- data helpers -----------------------------------------------------------------------------
    def invoice(self, number: str = "INV-T1", amount="100.00", status: str = "AUTHORISED", **fields) -> dict:
        """A minimal ACCREC invoice element."""
        element = {
            "Type": "ACCREC",
            "Contact": {"Name": "Jane Citizen"},
            "Date": "2025-03-01",
            "DueDate": "2025-03-15",
            "InvoiceNumber": number,
            "Status": status,
            "LineAmountTypes": "Exclusive",
            "LineItems": [
                {
                    "Description": "Consultation",
                    "Quantity": 1,
                    "UnitAmount": amount,
                    "AccountCode": "200",
                    "TaxType": "OUTPUT",
                }
            ],
        }
        element.update(fields)
        return element

    def create_invoice(self, **kwargs) -> dict:
        """PUT one invoice (summarizeErrors=false) and return it, asserting success."""
        response = self.api("PUT", "Invoices?summarizeErrors=false", json={"Invoices": [self.invoice(**kwargs)]})
        assert response.status_code == 200, response.text
        element = response.json()["Invoices"][0]
        assert element["StatusAttributeString"] == "OK", element
        return element


@pytest.fixture
def xero_make():
    """Factory: xero_make(**create_app options) → a served, connected XeroHandle (auto consent on)."""
    with contextlib.ExitStack() as stack:

        def make(connect: bool = True, **options) -> XeroHandle:
            options.setdefault("auto_consent", True)
            app = create_app(**options)
            base = stack.enter_context(serve(app))
            handle = XeroHandle(base, app)
            stack.callback(handle.sandbox.faults.configure, {})
            if connect:
                handle.connect()
            return handle

        yield make


@pytest.fixture(scope="session")
def xero_shared_server():
    """One default sandbox Xero (auto consent) served for the whole session; tests reset it."""
    app = create_app(auto_consent=True)
    with serve(app) as base:
        yield base, app


@pytest.fixture
def xero(xero_shared_server) -> XeroHandle:
    """The shared sandbox Xero, reset to its fixtures and connected to the demo organisation."""
    base, app = xero_shared_server
    handle = XeroHandle(base, app)
    handle.control("reset")
    handle.connect()
    yield handle
    handle.sandbox.reset()
