"""XeroClient over real HTTP against the sandbox Xero emulator (tokens from its OAuth flow)."""

import threading
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.servers import serve
from webapp.clients.errors import (
    AmbiguousError,
    AuthError,
    BudgetExhaustedError,
    NotSentError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from webapp.clients.rate_limit import BudgetSettings, xero_budget
from webapp.clients.xero import XeroClient
from webapp.clients.xero_dates import parse_xero_date

create_app = pytest.importorskip("sandbox.xero.app").create_app

REDIRECT = "http://localhost/callback"
SCOPES = "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read"


@pytest.fixture(scope="module")
def server():
    with serve(create_app(window_seconds=60, auto_consent=True)) as base:
        yield base


class Org:
    """One connected sandbox organisation: its token, tenant and a client factory."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.api = f"{base}/api.xro/2.0"
        code = requests.get(f"{base}/identity/connect/authorize", allow_redirects=False, timeout=10, params={
            "response_type": "code", "client_id": "sandbox-client", "redirect_uri": REDIRECT,
            "scope": SCOPES, "state": "test"}).headers["Location"]
        code = parse_qs(urlsplit(code).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        tokens = requests.post(f"{base}/connect/token", auth=("sandbox-client", "sandbox-secret"), timeout=10,
                               data=form)
        self.token = tokens.json()["access_token"]
        connections = requests.get(f"{base}/connections", timeout=10,
                                   headers={"Authorization": f"Bearer {self.token}"}).json()
        self.tenant_id = connections[0]["tenantId"]
        self.calls = []

    def client(self, **kw) -> XeroClient:
        kw.setdefault("on_call", self.calls.append)
        kw.setdefault("sleep", lambda s: None)
        return XeroClient(self.api, lambda: self.token, self.tenant_id, **kw)

    def control(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.base}/_sandbox/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict:
        body = requests.get(f"{self.base}/_sandbox/state", timeout=10).json()
        return next(o for o in body["organisations"] if o["tenant_id"] == self.tenant_id)


DEFAULT_LIMITS = {"window_seconds": 60, "minute_limit": 60, "concurrent_limit": 5, "day_limit": 5000,
                  "app_minute_limit": 10000, "reset_counts": True}


@pytest.fixture
def org(server):
    requests.post(f"{server}/_sandbox/reset", timeout=10).raise_for_status()
    # /_sandbox/reset keeps limits changed through /_sandbox/limits, so put the defaults back too.
    requests.post(f"{server}/_sandbox/limits", json=DEFAULT_LIMITS, timeout=10).raise_for_status()
    return Org(server)


def contact(n: int, name: str | None = None) -> dict:
    return {"Name": name or f"Patient {n}", "ContactNumber": f"CLK-{n}"}


def invoice(number: str, contact_number: str = "CLK-1", account: str = "200", unit=Decimal("100.00"),
            qty=Decimal("1")) -> dict:
    return {
        "Type": "ACCREC", "InvoiceNumber": number, "Contact": {"ContactNumber": contact_number},
        "Date": "2026-03-02", "DueDate": "2026-03-02", "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
        "Reference": f"Cliniko {number}",
        "LineItems": [{"Description": "Initial consultation", "Quantity": qty, "UnitAmount": unit,
                       "AccountCode": account, "TaxType": "OUTPUT"}],
    }


def test_contacts_batch_outcomes_are_matched_by_contact_number(org):
    client = org.client()
    result = client.create_contacts([contact(1, "Jane Smith"), contact(2, "Jane Smith"), contact(3)], "c-1")
    assert result["CLK-1"].ok and result["CLK-3"].ok and result["CLK-1"].xero_id != result["CLK-3"].xero_id
    assert not result["CLK-2"].ok and "already assigned to another contact" in result["CLK-2"].errors[0]
    assert result.missing == [] and result.unmatched == []
    read = client.contacts(contact_numbers=["CLK-1", "CLK-3", "X"])
    found = {c["ContactNumber"]: c["ContactID"] for c in read}
    assert found == {"CLK-1": result["CLK-1"].xero_id, "CLK-3": result["CLK-3"].xero_id}
    update = client.update_contacts([{"ContactID": result["CLK-3"].xero_id, "ContactNumber": "CLK-3",
                                      "Name": "Patient Three"}], "c-2")
    assert update["CLK-3"].ok and update["CLK-3"].element["Name"] == "Patient Three"


def test_invoice_batch_mixed_valid_and_invalid_with_call_record(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    assert client.create_invoices([invoice("INV-7")], "i-0")["INV-7"].ok
    batch = [invoice("INV-1"), invoice("INV-2", account="250"), invoice("INV-7"), invoice("INV-3")]
    result = client.create_invoices(batch, "i-1")
    assert {k for k, o in result.outcomes.items() if o.ok} == {"INV-1", "INV-3"}
    assert result["INV-2"].errors == ("Account code has been archived or deleted",)
    assert result["INV-7"].errors == ("Invoice # must be unique.",)
    assert result["INV-1"].xero_id and result["INV-2"].xero_id is None
    call = result.call
    assert call.method == "PUT" and call.status == 200 and call.idempotency_key == "i-1"
    assert "summarizeErrors=false" in call.url and "unitdp=4" in call.url
    assert call.request_id and call.duration_ms > 0 and call.rate_headers["X-MinLimit-Remaining"]
    assert org.calls[-1] is call
    numbers = {i["InvoiceNumber"] for i in org.state()["invoices"]}
    assert numbers == {"INV-1", "INV-3", "INV-7"}


def test_idempotency_key_replays_and_refuses_a_different_request(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    first = client.create_invoices([invoice("INV-1"), invoice("INV-2")], "batch-42")
    again = client.create_invoices([invoice("INV-1"), invoice("INV-2")], "batch-42")
    assert again["INV-1"].ok and again["INV-1"].xero_id == first["INV-1"].xero_id
    assert again.call.request_id == first.call.request_id  # the stored first response
    assert org.state()["counts"]["invoices"] == 2
    with pytest.raises(ValidationError) as info:
        client.create_invoices([invoice("INV-3")], "batch-42")
    assert "used with a different request" in info.value.message and info.value.status == 400
    with pytest.raises(ValueError):
        client.create_invoices([invoice("INV-4")], "")
    with pytest.raises(ValueError):
        client.create_invoices([invoice("INV-4")], "k" * 129)


def test_decimal_round_trip_with_four_decimal_unit_amounts(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    sent = invoice("INV-1", unit=Decimal("81.8181"), qty=Decimal("1.5"))
    created = client.create_invoices([sent], "i-1")["INV-1"]
    line = created.element["LineItems"][0]
    assert line["UnitAmount"] == Decimal("81.8181") and line["Quantity"] == Decimal("1.5")
    assert isinstance(created.element["Total"], Decimal)
    assert created.element["SubTotal"] == Decimal("122.73")  # 1.5 x 81.8181, rounded to cents
    read = client.invoice(created.xero_id)
    assert read["LineItems"][0]["UnitAmount"] == Decimal("81.8181")
    assert read["Total"] == created.element["Total"]
    assert parse_xero_date(read["Date"]).date().isoformat() == "2026-03-02"


def test_payments_delete_and_void(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    inv = client.create_invoices([invoice("INV-1"), invoice("INV-2")], "i-1")
    total = inv["INV-1"].element["Total"]
    payments = [
        {"Invoice": {"InvoiceID": inv["INV-1"].xero_id}, "Account": {"Code": "090"}, "Date": "2026-03-03",
         "Amount": total, "Reference": "Cliniko invoice INV-1"},
        {"Invoice": {"InvoiceID": inv["INV-2"].xero_id}, "Account": {"Code": "090"}, "Date": "2026-03-03",
         "Amount": total + Decimal("5.00"), "Reference": "Cliniko invoice INV-2"},
    ]
    paid = client.create_payments(payments, "p-1")
    assert paid["Cliniko invoice INV-1"].ok
    assert "exceeds" in paid["Cliniko invoice INV-2"].errors[0]
    found = list(client.payments(where=f'Invoice.InvoiceID==Guid("{inv["INV-1"].xero_id}")'))
    assert [p["PaymentID"] for p in found] == [paid["Cliniko invoice INV-1"].xero_id]
    with pytest.raises(ValidationError) as refused:  # a single-document POST answers 400, not 200
        client.void_invoice(inv["INV-1"].xero_id, "v-1")
    assert "payment" in refused.value.message and refused.value.elements[0].key == "INV-1"
    deleted = client.delete_payment(paid["Cliniko invoice INV-1"].xero_id, "d-1")
    assert deleted.ok and deleted.element["Status"] == "DELETED"
    voided = client.void_invoice(inv["INV-1"].xero_id, "v-2", invoice_number="INV-1")
    assert voided.ok and voided.key == "INV-1" and voided.element["Status"] == "VOIDED"


def test_reads_by_numbers_ids_and_where_with_paging(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    numbers = [f"INV-{n:03d}" for n in range(120)]
    for start in range(0, 120, 50):
        chunk = numbers[start:start + 50]
        result = client.create_invoices([invoice(n) for n in chunk], f"i-{start}")
        assert len(result.succeeded) == len(chunk)
    org.calls.clear()
    everything = list(client.invoices(where='Type=="ACCREC"'))
    assert sorted(i["InvoiceNumber"] for i in everything) == numbers
    assert len(org.calls) == 2 and "page=2" in org.calls[1].url  # 100 + 20
    by_number = list(client.invoices(invoice_numbers=numbers[5:90] + ["NOPE"]))
    assert sorted(i["InvoiceNumber"] for i in by_number) == numbers[5:90]
    ids = [i["InvoiceID"] for i in everything[:7]]
    assert sorted(i["InvoiceID"] for i in client.invoices(ids=ids)) == sorted(ids)
    assert len(list(client.invoices(statuses=["VOIDED"]))) == 0


def test_settings_reads(org):
    client = org.client()
    accounts = client.accounts()
    assert any(a["Code"] == "200" for a in accounts) and any(a["Status"] == "ARCHIVED" for a in accounts)
    assert any(t["TaxType"] == "OUTPUT" for t in client.tax_rates())
    assert {c["Name"] for c in client.tracking_categories()} >= {"Location", "Practitioner"}


def test_auth_errors_carry_xero_detail(org):
    bad_token = XeroClient(org.api, lambda: "not-a-token", org.tenant_id)
    with pytest.raises(AuthError) as info:
        bad_token.accounts()
    assert info.value.status == 401 and info.value.call.status == 401
    wrong_tenant = XeroClient(org.api, lambda: org.token, "00000000-0000-0000-0000-00000000beef")
    with pytest.raises(AuthError) as info:
        wrong_tenant.accounts()
    assert info.value.status == 403 and "AuthenticationUnsuccessful" in info.value.message


def test_bad_where_is_a_validation_error(org):
    with pytest.raises(ValidationError) as info:
        list(org.client().invoices(where="Type=="))
    assert info.value.status == 400 and info.value.messages


def test_429_minute_gives_retry_after_and_problem(org):
    org.control("faults", {"storm_calls": 1, "retry_after": 7})
    with pytest.raises(RateLimitedError) as info:
        org.client().accounts()
    assert info.value.problem == "minute" and info.value.retry_after == 7 and info.value.status == 429
    assert len(org.calls) == 1, "a 429 is never retried in place"


def test_429_with_budget_parks_the_tenant_and_the_next_call_is_not_sent(org, redis):
    budget = xero_budget(redis, BudgetSettings(calls_per_window=100))
    client = org.client(budget=budget)
    org.control("faults", {"storm_calls": 1, "retry_after": 30})
    with pytest.raises(RateLimitedError) as info:
        client.accounts()
    assert type(info.value) is RateLimitedError and info.value.retry_after == 30
    with pytest.raises(BudgetExhaustedError) as info:
        client.accounts()
    assert info.value.problem == "minute" and info.value.call is None and 29 < info.value.retry_after <= 30
    assert len(org.calls) == 1, "the budget refused before sending"
    snap = budget.snapshot(org.tenant_id)
    assert snap.parked_problem == "minute" and snap.concurrent_in_use == 0
    other = xero_budget(redis, BudgetSettings(calls_per_window=100))
    assert other.acquire("another-tenant").go, "other tenants are not parked"


def test_remaining_headers_stop_us_before_xero_says_429(org, redis):
    org.control("limits", {"minute_limit": 2})
    budget = xero_budget(redis, BudgetSettings(calls_per_window=100))
    client = org.client(budget=budget)
    client.accounts()
    client.tax_rates()  # X-MinLimit-Remaining: 0
    with pytest.raises(BudgetExhaustedError) as info:
        client.accounts()
    assert info.value.problem == "minute" and 59 < info.value.retry_after <= 60.25
    assert org.state()["calls"]["rate_limited"] == 0 and len(org.calls) == 2
    assert budget.snapshot(org.tenant_id).last_headers["minute_remaining"] == "0"


def test_budget_window_is_kept_and_slots_released(org, redis):
    budget = xero_budget(redis, BudgetSettings(calls_per_window=3, max_concurrent=2))
    client = org.client(budget=budget)
    for _ in range(3):
        client.tax_rates()
    with pytest.raises(BudgetExhaustedError) as info:
        client.tax_rates()
    assert info.value.problem == "minute" and info.value.retry_after > 50
    snap = budget.snapshot(org.tenant_id)
    assert (snap.window_used, snap.concurrent_in_use, snap.day_used) == (3, 0, 3)


def test_read_timeout_after_send_is_ambiguous_and_may_have_committed(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    org.control("faults", {"latency_ms": 700, "methods": ["PUT"]})
    with pytest.raises(AmbiguousError) as info:
        org.client(read_timeout=0.2).create_invoices([invoice("INV-1")], "i-1")
    assert info.value.outcome_unknown and info.value.call.sent and info.value.call.status is None
    time.sleep(0.8)
    # Reconcile by natural key: the write landed after we gave up waiting.
    assert [i["InvoiceNumber"] for i in client.invoices(invoice_numbers=["INV-1"])] == ["INV-1"]


def test_commit_then_drop_is_ambiguous_and_reconcilable(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    org.control("faults", {"script": ["drop"], "methods": ["PUT"]})
    with pytest.raises(AmbiguousError):
        client.create_invoices([invoice("INV-9")], "i-9")
    assert [i["InvoiceNumber"] for i in client.invoices(invoice_numbers=["INV-9"])] == ["INV-9"]


def test_hang_is_ambiguous_even_when_nothing_was_committed(org):
    client = org.client()
    client.create_contacts([contact(1)], "c-1")
    org.control("faults", {"script": ["timeout"], "methods": ["PUT"], "hang_seconds": 3})
    try:
        with pytest.raises(AmbiguousError):
            org.client(read_timeout=0.3).create_invoices([invoice("INV-5")], "i-5")
    finally:
        org.control("faults", {})  # wakes the hanging request
    assert list(client.invoices(invoice_numbers=["INV-5"])) == []


def test_unreachable_server_is_not_sent(org):
    dead = XeroClient("http://127.0.0.1:9/api.xro/2.0", lambda: org.token, org.tenant_id, read_retries=0)
    with pytest.raises(NotSentError) as info:
        dead.create_invoices([invoice("INV-1")], "i-1")
    assert not info.value.outcome_unknown and info.value.call.sent is False


def test_reads_retry_on_5xx_but_writes_do_not(org):
    client = org.client()
    org.control("faults", {"script": ["error", "ok"]})
    assert client.accounts()
    assert [c.status for c in org.calls] == [503, 200]
    org.calls.clear()
    org.control("faults", {"script": ["error"]})
    with pytest.raises(ServerError) as info:
        client.create_contacts([contact(1)], "c-1")
    assert info.value.status == 503 and len(org.calls) == 1


def test_concurrency_slots_keep_xero_from_refusing_parallel_calls(org, redis):
    org.control("limits", {"concurrent_limit": 3})
    org.control("faults", {"latency_ms": 150, "methods": ["GET"]})
    budget = xero_budget(redis, BudgetSettings(max_concurrent=3))
    outcomes = []

    def one_call():
        client = org.client(budget=budget)
        for _ in range(20):  # bounded: re-try after the budget's hint, as a job would re-schedule
            try:
                client.tax_rates()
                outcomes.append("ok")
                return
            except BudgetExhaustedError as exc:
                outcomes.append(exc.problem)
                time.sleep(min(exc.retry_after, 0.05))

    threads = [threading.Thread(target=one_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes.count("ok") == 8 and "concurrent" in outcomes
    assert org.state()["calls"]["rate_limited"] == 0
    assert budget.snapshot(org.tenant_id).concurrent_in_use == 0
