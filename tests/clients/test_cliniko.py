"""ClinikoClient over real HTTP against the sandbox Cliniko emulator."""

import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import unquote

import pytest
import requests

from tests.support.servers import serve
from webapp.clients.cliniko import ClinikoClient
from webapp.clients.errors import (
    AuthError,
    BadResponseError,
    ErrorPageError,
    NotSentError,
    RateLimitedError,
    ServerError,
)
from webapp.clients.rate_limit import cliniko_budget

create_app = pytest.importorskip("sandbox.cliniko.app").create_app

KEY = "sandbox-key-au1"
UA = "Cliniko Xero Sync tests (ops@example.com)"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    app = create_app(api_key=KEY, seed=0, patients=30, invoices=250, calls_per_minute=10_000)
    with serve(app) as base:
        yield base


@pytest.fixture
def sandbox(server):
    """The base URL, with the emulator reset (data, faults, limits, counters) before each test."""
    requests.post(f"{server}/_sandbox/reset", json={}, timeout=10).raise_for_status()
    return server


def control(base, path, body=None):
    response = requests.post(f"{base}/_sandbox/{path}", json=body or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def state(base, **params):
    return requests.get(f"{base}/_sandbox/state", params=params, timeout=10).json()


def client(base, calls=None, **kw):
    kw.setdefault("sleep", lambda s: time.sleep(min(s, 2)))
    return ClinikoClient(KEY, UA, api_url=base, on_call=calls.append if calls is not None else None, **kw)


def test_test_connection_reads_account_and_businesses(sandbox):
    info = client(sandbox).test_connection()
    assert info.account_name and info.country_code == "AU" and info.currency == "$"
    assert len(info.businesses) == state(sandbox)["counts"]["businesses"]["total"]
    assert all(isinstance(b["id"], str) for b in info.businesses)


def test_paging_follows_next_links_and_reads_every_invoice_once(sandbox):
    calls = []
    invoices = list(client(sandbox, calls, per_page=40).invoices_updated_since(EPOCH))
    expected = {i["id"] for i in state(sandbox, invoices=1)["invoices"]}
    ids = [i["id"] for i in invoices]
    assert len(ids) == len(set(ids)) == len(expected) == 250 and set(ids) == expected
    assert len(calls) == 7  # ceil(250 / 40)
    assert all(c.status == 200 and c.duration_ms > 0 for c in calls)
    assert [i["updated_at"] for i in invoices] == sorted(i["updated_at"] for i in invoices)
    assert any(i["archived_at"] for i in invoices) and any(i["deleted_at"] for i in invoices)


def test_records_have_decimal_money_aware_times_and_string_ids(sandbox):
    invoice = next(iter(client(sandbox).invoices_updated_since(EPOCH)))
    assert isinstance(invoice["total_amount"], Decimal) and isinstance(invoice["id"], str)
    assert isinstance(invoice["issue_date"], date) and invoice["updated_at"].tzinfo is not None
    assert invoice["patient_id"].isdigit() and invoice["business_id"].isdigit()
    items = list(client(sandbox).invoice_items([invoice["id"]]))
    assert items and all(i["invoice_id"] == invoice["id"] for i in items)
    assert all(isinstance(i["unit_price"], Decimal) and isinstance(i["quantity"], Decimal) for i in items)
    line_total = sum(i["total_including_tax"] for i in items if not i["deleted_at"] and not i["archived_at"])
    assert abs(line_total - invoice["total_amount"]) <= Decimal("0.05")


def test_updated_since_filters_by_cursor(sandbox):
    every = state(sandbox, invoices=1)["invoices"]
    stamps = sorted(i["updated_at"] for i in every)
    cursor = datetime.fromisoformat(stamps[200].replace("Z", "+00:00"))
    got = list(client(sandbox).invoices_updated_since(cursor))
    assert {i["id"] for i in got} == {i["id"] for i in every if i["updated_at"] >= stamps[200]}
    with pytest.raises(ValueError):
        list(client(sandbox).invoices_updated_since(datetime(2020, 1, 1)))  # naive cursor refused


def test_bulk_reads_by_id_are_chunked(sandbox):
    invoices = list(client(sandbox).invoices_updated_since(EPOCH))
    invoice_ids = [i["id"] for i in invoices]
    patient_ids = sorted({i["patient_id"] for i in invoices})
    calls = []
    patients = list(client(sandbox, calls, id_chunk=10).patients(patient_ids + patient_ids[:3]))
    assert len(calls) == -(-len(patient_ids) // 10)
    # Cliniko never lists deleted patients; every other one comes back exactly once.
    assert len(patients) == len({p["id"] for p in patients}) >= len(patient_ids) - 1
    assert {p["id"] for p in patients} <= set(patient_ids)
    calls.clear()
    items = list(client(sandbox, calls).invoice_items(invoice_ids))
    assert len(items) == state(sandbox)["counts"]["invoice_items"]["total"]
    assert {i["invoice_id"] for i in items} <= set(invoice_ids)
    assert len(calls) <= 6, "items for 250 invoices cost a handful of calls, not one per invoice"
    some = invoice_ids[:5]
    assert sorted(i["id"] for i in client(sandbox).invoices(some)) == sorted(some)


def test_catalogue_reads(sandbox):
    c = client(sandbox)
    counts = state(sandbox)["counts"]
    assert len(list(c.billable_items())) == counts["billable_items"]["total"]
    assert len(list(c.products())) == counts["products"]["total"]
    taxes = list(c.taxes())
    assert taxes and all(isinstance(t["rate"], Decimal) for t in taxes)
    assert list(c.appointment_types()) and list(c.practitioners())
    assert list(c.individual_appointments_updated_since(EPOCH))
    assert c.settings()["account"]["name"]


def test_wrong_key_gives_a_clear_auth_error_without_retries(sandbox):
    calls = []
    bad = ClinikoClient("wrong-key-au1", UA, api_url=sandbox, on_call=calls.append)
    with pytest.raises(AuthError) as info:
        bad.test_connection()
    assert info.value.status == 401 and "API key" in info.value.message and "wrong-key" not in str(info.value)
    assert len(calls) == 1


def test_html_500_page_is_a_bad_response_after_bounded_retries(sandbox):
    control(sandbox, "faults", {"html_500_rate": 1.0})
    calls, slept = [], []
    with pytest.raises(BadResponseError) as info:
        client(sandbox, calls, max_retries=2, sleep=slept.append).settings()
    assert isinstance(info.value, ErrorPageError) and isinstance(info.value, ServerError)
    assert info.value.status == 500 and "<html" in info.value.detail.lower()
    assert len(calls) == 3 and len(slept) == 2


def test_malformed_json_is_a_bad_response(sandbox):
    control(sandbox, "faults", {"malformed_json_rate": 1.0})
    with pytest.raises(BadResponseError) as info:
        client(sandbox, max_retries=0).settings()
    assert info.value.status == 200 and "malformed JSON" in info.value.message


def test_transient_500_is_retried_then_succeeds(sandbox):
    control(sandbox, "faults", {"error_rate": 1.0, "error_status": 502, "count": 1})
    calls = []
    assert client(sandbox, calls, sleep=lambda s: None).settings()["account"]
    assert [c.status for c in calls] == [502, 200]


def test_429_waits_until_reset_then_succeeds(sandbox):
    control(sandbox, "rate_limit", {"calls_per_minute": 3, "window_seconds": 1})
    calls = []
    started = time.monotonic()
    invoices = list(client(sandbox, calls, per_page=40, max_rate_wait=5).invoices_updated_since(EPOCH))
    assert len(invoices) == 250
    assert 429 in [c.status for c in calls] and time.monotonic() - started < 8
    assert state(sandbox)["rate_limited"][KEY] >= 1


def test_429_beyond_the_wait_bound_raises_with_retry_after(sandbox):
    control(sandbox, "rate_limit", {"calls_per_minute": 1, "window_seconds": 30})
    c = client(sandbox, max_rate_wait=0.5)
    c.settings()
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        c.settings()
    assert 0 < info.value.retry_after <= 31 and info.value.reset_at > time.time()
    assert time.monotonic() - started < 1.5


def test_shared_budget_keeps_under_the_limit_without_429(sandbox, redis):
    control(sandbox, "rate_limit", {"calls_per_minute": 4, "window_seconds": 1})
    budget = cliniko_budget(redis, calls_per_minute=4, window_seconds=1)
    calls = []
    started = time.monotonic()
    invoices = list(client(sandbox, calls, per_page=25, budget=budget).invoices_updated_since(EPOCH))
    assert len(invoices) == 250 and len(calls) == 10
    assert all(c.status == 200 for c in calls)
    assert state(sandbox)["rate_limited"].get(KEY, 0) == 0
    assert time.monotonic() - started >= 2.0  # 10 calls at 4 per second


def test_unreachable_host_is_not_sent():
    with pytest.raises(NotSentError):
        ClinikoClient(KEY, UA, api_url="http://127.0.0.1:9", max_retries=1, sleep=lambda s: None).settings()


def test_updated_at_cursor_is_sent_as_utc_whole_seconds(sandbox):
    calls = []
    sydney = timezone(timedelta(hours=10))
    cursor = datetime(2026, 1, 2, 23, 4, 5, 999_999, tzinfo=sydney)
    list(client(sandbox, calls).invoices_updated_since(cursor))
    assert "q[]=updated_at:>=2026-01-02T13:04:05Z" in unquote(calls[0].url)
