"""Sandbox Xero payments: AUTHORISED only, ≤ amount due, payable accounts, PAID and back, deletion, voids."""

from sandbox.xero.accounting.documents import HAS_ALLOCATIONS
from sandbox.xero.accounting.payments import ACCOUNT_NOT_PAYABLE, EXCEEDS, ONLY_AUTHORISED


def _pay(xero, invoice_id, amount, code="090", date="2025-03-05", summarize=False, **extra):
    element = {
        "Invoice": {"InvoiceID": invoice_id},
        "Account": {"Code": code},
        "Amount": amount,
        "Date": date,
        **extra,
    }
    params = {"summarizeErrors": "false"} if not summarize else {}
    return xero.api("PUT", "Payments", params=params, json={"Payments": [element]})


def _errors(response):
    return [e["Message"] for e in response.json()["Payments"][0].get("ValidationErrors", [])]


def test_part_then_full_payment_marks_paid_and_delete_reverts(xero):
    invoice = xero.create_invoice(number="P-1")
    first = _pay(xero, invoice["InvoiceID"], "50.00", Reference="r1")
    assert first.json()["Payments"][0]["StatusAttributeString"] == "OK"
    assert _errors(_pay(xero, invoice["InvoiceID"], "60.01")) == [EXCEEDS]
    second = _pay(xero, invoice["InvoiceID"], 60, code="611", Reference="cliniko-2").json()["Payments"][0]
    assert second["Account"]["Code"] == "611" and second["Reference"] == "cliniko-2"
    paid = xero.api("GET", "Invoices/" + invoice["InvoiceID"]).json()["Invoices"][0]
    assert (paid["Status"], paid["AmountDue"], paid["AmountPaid"]) == ("PAID", 0, 110)
    assert len(paid["Payments"]) == 2 and paid["FullyPaidOnDate"].startswith("/Date(")
    assert _errors(_pay(xero, invoice["InvoiceID"], 1)) == [ONLY_AUTHORISED]
    deleted = xero.api("POST", "Payments/" + second["PaymentID"], json={"Status": "DELETED"})
    assert deleted.status_code == 200 and deleted.json()["Payments"][0]["Status"] == "DELETED"
    back = xero.api("GET", "Invoices/" + invoice["InvoiceID"]).json()["Invoices"][0]
    assert (back["Status"], back["AmountDue"]) == ("AUTHORISED", 60)
    listed = xero.api("GET", "Payments", params={"where": 'Status=="AUTHORISED"'}).json()["Payments"]
    assert len(listed) == 1


def test_payments_only_on_authorised_documents(xero):
    draft = xero.create_invoice(number="P-2", status="DRAFT")
    assert _errors(_pay(xero, draft["InvoiceID"], 10)) == [ONLY_AUTHORISED]
    response = _pay(xero, draft["InvoiceID"], 10, summarize=True)
    assert response.status_code == 400
    assert response.json()["Elements"][0]["ValidationErrors"] == [{"Message": ONLY_AUTHORISED}]


def test_payment_account_must_be_bank_or_payments_enabled(xero):
    invoice = xero.create_invoice(number="P-3")
    assert _errors(_pay(xero, invoice["InvoiceID"], 10, code="200")) == [ACCOUNT_NOT_PAYABLE]
    assert _errors(_pay(xero, invoice["InvoiceID"], 10, code="250")) == ["Account code has been archived or deleted"]
    missing = xero.api(
        "PUT",
        "Payments",
        params={"summarizeErrors": "false"},
        json={"Payments": [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": 10}]},
    )
    assert _errors(missing) == ["You must specify an Account code or Account ID for the payment"]
    xero.control("accounts", {"Code": "620", "EnablePaymentsToAccount": True})
    assert _pay(xero, invoice["InvoiceID"], 10, code="620").json()["Payments"][0]["StatusAttributeString"] == "OK"
    unknown = _pay(xero, "00000000-0000-0000-0000-000000000009", 10)
    assert _errors(unknown) == ["The document with the supplied id was not found for this endpoint."]


def test_void_refused_while_payments_exist(xero):
    invoice = xero.create_invoice(number="P-4")
    payment = _pay(xero, invoice["InvoiceID"], 5).json()["Payments"][0]
    refused = xero.api("POST", "Invoices/" + invoice["InvoiceID"], json={"Status": "VOIDED"})
    assert refused.status_code == 400
    assert refused.json()["Elements"][0]["ValidationErrors"] == [{"Message": HAS_ALLOCATIONS}]
    xero.api("POST", "Payments/" + payment["PaymentID"], json={"Status": "DELETED"})
    voided = xero.api("POST", "Invoices/" + invoice["InvoiceID"], json={"Status": "VOIDED"})
    assert voided.json()["Invoices"][0]["Status"] == "VOIDED"


def test_payment_lock_dates_and_single_post(xero):
    invoice = xero.create_invoice(number="P-5")
    xero.control("lock-dates", {"period_lock_date": "2025-03-10"})
    assert _errors(_pay(xero, invoice["InvoiceID"], 5, date="2025-03-10")) == [
        "The document date cannot be before the period lock date, currently set at 10-Mar-2025"
    ]
    single = xero.api(
        "POST",
        "Payments",
        json={
            "Invoice": {"InvoiceNumber": "P-5"},
            "Account": {"Code": "090"},
            "Amount": 5,
            "Date": "2025-03-11",
        },
    )
    assert single.status_code == 200 and single.json()["Payments"][0]["Amount"] == 5
    state = xero.state()["organisations"][0]
    [row] = [i for i in state["invoices"] if i["InvoiceNumber"] == "P-5"]
    assert row["AmountPaid"] == "5.00" and row["payments"][0]["Amount"] == "5.00"
