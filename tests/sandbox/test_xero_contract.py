"""Contract: every response shape sandbox Xero produces validates against Xero's OpenAPI files."""

import os
import pathlib
import time
from urllib.parse import urlparse

import pytest
import yaml
from werkzeug.datastructures import Headers, ImmutableMultiDict

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACCOUNTING_SPEC = pathlib.Path(os.environ.get("XERO_OPENAPI_SPEC") or ROOT / "../shared/xero/xero_accounting.yaml")
IDENTITY_SPEC = ACCOUNTING_SPEC.with_name("xero-identity.yaml")


def _xero_datetime(value) -> bool:
    """Xero's identity timestamps carry no offset ("2019-12-07T18:46:19.5165400", the spec's own example)."""
    import datetime as dt

    if not isinstance(value, str):
        return True
    head, _, fraction = value.partition(".")
    try:
        dt.datetime.fromisoformat(head.removesuffix("Z"))
    except ValueError:
        return False
    return fraction.rstrip("Z").isdigit() or not fraction


def _load(path: pathlib.Path, **config):
    from jsonschema_path import SchemaPath
    from openapi_core import Config, OpenAPI

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader (C or Python)
    # The spec is Xero's own; validating the 900 KB document itself on every run costs time for nothing.
    return OpenAPI(SchemaPath.from_dict(spec), config=Config(spec_validator_cls=None, **config))


@pytest.fixture(scope="session")
def xero_accounting_openapi():
    """Xero's accounting OpenAPI (loaded once); skips when the file is not beside the project."""
    if not ACCOUNTING_SPEC.is_file():
        pytest.skip(f"Xero OpenAPI spec not found at {ACCOUNTING_SPEC} (set XERO_OPENAPI_SPEC)")
    started = time.monotonic()
    openapi = _load(ACCOUNTING_SPEC)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"loading the spec took {elapsed:.1f}s"
    return openapi


@pytest.fixture(scope="session")
def xero_identity_openapi():
    """Xero's identity OpenAPI; skips when absent."""
    if not IDENTITY_SPEC.is_file():
        pytest.skip(f"Xero identity spec not found at {IDENTITY_SPEC}")
    # The spec says format date-time but its own example (and live Xero) has no offset: accept that form.
    return _load(IDENTITY_SPEC, extra_format_validators={"date-time": _xero_datetime})


class _Request:
    """openapi-core request protocol for a call made to the sandbox, seen as if sent to api.xero.com."""

    def __init__(self, response, prefix: str) -> None:
        prepared = response.request
        url = urlparse(prepared.url)
        self.host_url = "https://api.xero.com"
        self.path = url.path if url.path.startswith(prefix) else prefix + url.path
        self.method = prepared.method.lower()
        self.full_url_pattern = self.host_url + self.path
        from openapi_core.datatypes import RequestParameters

        query = [tuple(part.split("=", 1)) if "=" in part else (part, "") for part in url.query.split("&") if part]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(dict(prepared.headers)),
            cookie=ImmutableMultiDict(),
        )
        body = prepared.body
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = prepared.headers.get("Content-Type", "application/json")


class _Response:
    """openapi-core response protocol over a requests.Response."""

    def __init__(self, response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("Content-Type", "").split(";")[0]
        self.data = response.content


def _validate(openapi, response, prefix=""):
    openapi.validate_response(_Request(response, prefix), _Response(response))


def _exercise(xero) -> list:
    """Produce one of each response the emulator gives on the contract's endpoints."""
    out = []

    def call(method, path, expect, **kwargs):
        response = xero.api(method, path, **kwargs)
        assert response.status_code == expect, (path, response.text[:300])
        out.append(response)
        return response

    for path in (
        "Accounts",
        "TaxRates",
        "TrackingCategories",
        "TrackingCategories?includeArchived=true",
        "Organisation",
    ):
        call("GET", path, 200)
    account_id = xero.api("GET", "Accounts").json()["Accounts"][0]["AccountID"]
    call("GET", "Accounts/" + account_id, 200)
    contact = call(
        "PUT",
        "Contacts",
        200,
        json={"Contacts": [{"Name": "Con Tract", "ContactNumber": "K-1", "EmailAddress": "c@example.com"}]},
    )
    contact_id = contact.json()["Contacts"][0]["ContactID"]
    call("PUT", "Contacts?summarizeErrors=false", 200, json={"Contacts": [{"Name": "Con Tract"}]})
    call("PUT", "Contacts", 400, json={"Contacts": [{"Name": "Con Tract"}]})
    call(
        "POST",
        "Contacts",
        200,
        json={"Contacts": [{"ContactID": contact_id, "EmailAddress": "d@example.com"}]},
    )
    call("POST", "Contacts/" + contact_id, 200, json={"Contacts": [{"FirstName": "Con"}]})
    call("GET", "Contacts", 200)
    call("GET", "Contacts?page=1&where=ContactNumber%3D%3D%22K-1%22", 200)
    call("GET", "Contacts/" + contact_id, 200)
    tracked = [
        {
            "Description": "Visit",
            "Quantity": 1.5,
            "UnitAmount": 80,
            "AccountCode": "200",
            "TaxType": "OUTPUT",
            "DiscountRate": 5,
            "Tracking": [{"Name": "Location", "Option": "Parramatta"}],
        }
    ]
    created = call(
        "PUT",
        "Invoices?summarizeErrors=false&unitdp=4",
        200,
        json={"Invoices": [xero.invoice("K-INV-1", LineItems=tracked), xero.invoice("K-INV-1")]},
    )
    invoice_id = created.json()["Invoices"][0]["InvoiceID"]
    call("PUT", "Invoices", 400, json={"Invoices": [xero.invoice("K-INV-1")]})
    draft = call("PUT", "Invoices", 200, json={"Invoices": [xero.invoice("K-INV-2", status="DRAFT")]})
    call("POST", "Invoices", 200, json={"Invoices": [{"InvoiceNumber": "K-INV-2", "Reference": "r"}]})
    call("POST", "Invoices/" + draft.json()["Invoices"][0]["InvoiceID"], 400, json={"Status": "VOIDED"})
    call("GET", "Invoices", 200)
    call("GET", "Invoices?page=1&where=Status%3D%3D%22AUTHORISED%22", 200)
    call("GET", "Invoices/" + invoice_id, 200)
    payment = call(
        "PUT",
        "Payments?summarizeErrors=false",
        200,
        json={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice_id},
                    "Account": {"Code": "090"},
                    "Amount": 10,
                    "Date": "2025-03-02",
                },
                {
                    "Invoice": {"InvoiceID": invoice_id},
                    "Account": {"Code": "200"},
                    "Amount": 10,
                    "Date": "2025-03-02",
                },
            ]
        },
    )
    payment_id = payment.json()["Payments"][0]["PaymentID"]
    call("PUT", "Payments", 400, json={"Payments": [{"Invoice": {"InvoiceID": invoice_id}, "Amount": 10}]})
    call(
        "POST",
        "Payments",
        200,
        json={
            "Invoice": {"InvoiceID": invoice_id},
            "Account": {"Code": "611"},
            "Amount": 5,
            "Date": "2025-03-03",
        },
    )
    call("GET", "Payments", 200)
    call("GET", "Payments/" + payment_id, 200)
    call("POST", "Payments/" + payment_id, 200, json={"Status": "DELETED"})
    call("POST", "Payments/" + payment_id, 400, json={"Status": "DELETED"})
    note = {
        "Type": "ACCRECCREDIT",
        "Contact": {"ContactID": contact_id},
        "Date": "2025-03-02",
        "Status": "AUTHORISED",
        "LineItems": [{"Description": "Refund", "Quantity": 1, "UnitAmount": 20, "AccountCode": "200"}],
    }
    notes = call("PUT", "CreditNotes", 200, json={"CreditNotes": [note]})
    call("GET", "CreditNotes?page=1", 200)
    call("GET", "CreditNotes/" + notes.json()["CreditNotes"][0]["CreditNoteID"], 200)
    return out


def test_accounting_responses_match_the_spec(xero, xero_accounting_openapi):
    responses = _exercise(xero)
    assert len(responses) >= 30
    failures = []
    for response in responses:
        try:
            _validate(xero_accounting_openapi, response, "/api.xro/2.0")
        except Exception as exc:  # noqa: BLE001 - collect every mismatch, report them together
            failures.append(
                f"{response.request.method} {response.request.path_url} {response.status_code}: "
                f"{exc!r} {getattr(exc, '__cause__', '')!r}"
            )
    assert not failures, "\n".join(failures)


def test_identity_responses_match_the_spec(xero, xero_identity_openapi):
    import requests

    headers = {"Authorization": "Bearer " + xero.tokens["access_token"]}
    listed = requests.get(xero.base + "/Connections", headers=headers, timeout=10)
    _validate(xero_identity_openapi, listed)
    deleted = requests.delete(xero.base + "/Connections/" + listed.json()[0]["id"], headers=headers, timeout=10)
    assert deleted.status_code == 204
    _validate(xero_identity_openapi, deleted)
