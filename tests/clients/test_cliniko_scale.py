"""ClinikoClient at scale: sandbox Cliniko with 10,000 invoices over real HTTP, real Redis budget.

Call costs are counted twice: by the client's `on_call` hook and by the sandbox's per-key counter.
"""

import time
from datetime import UTC, datetime

import pytest
import requests

from tests.support.servers import serve
from webapp.clients.cliniko import ClinikoClient
from webapp.clients.errors import BadResponseError, ClientError, ErrorPageError
from webapp.clients.rate_limit import cliniko_budget

create_app = pytest.importorskip("sandbox.cliniko.app").create_app

KEY = "sandbox-key-au1"
UA = "Cliniko Xero Sync scale tests (ops@example.com)"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
INVOICES, PATIENTS = 10_000, 3_000
#: Budget and sandbox limit for the throttled run: 20 calls per 1-second window (the unthrottled
#: client does about 18-30 calls a second here, so the budget has to hold calls back).
WINDOW, PER_WINDOW = 1.0, 20
UNLIMITED = {"calls_per_minute": 1_000_000, "window_seconds": 1}  # a fault 429 resets within 1 s


@pytest.fixture(scope="module")
def big():
    started = time.monotonic()
    app = create_app(api_key=KEY, seed=0, patients=PATIENTS, invoices=INVOICES, calls_per_minute=1_000_000)
    generated = time.monotonic() - started
    print(f"\nsandbox Cliniko with {INVOICES} invoices generated in {generated:.2f}s")
    assert generated < 15, f"generating {INVOICES} invoices took {generated:.1f}s"
    with serve(app) as base:
        everything = requests.get(f"{base}/_sandbox/state", params={"invoices": 1}, timeout=30).json()
        yield base, everything


@pytest.fixture
def sandbox(big):
    base, everything = big
    # No /_sandbox/reset: it would regenerate 10,000 invoices. Faults and limits are put back instead.
    requests.delete(f"{base}/_sandbox/faults", timeout=10).raise_for_status()
    control(base, "rate_limit", UNLIMITED)
    yield base, everything
    requests.delete(f"{base}/_sandbox/faults", timeout=10).raise_for_status()
    control(base, "rate_limit", UNLIMITED)


def control(base, path, body):
    response = requests.post(f"{base}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def counters(base):
    body = requests.get(f"{base}/_sandbox/state", timeout=30).json()
    return body["calls"].get(KEY, 0), body["rate_limited"].get(KEY, 0), body["faults"]


def test_walk_10000_invoices_and_their_items_within_call_and_rate_budgets(sandbox, redis):
    base, everything = sandbox
    expected = {i["id"] for i in everything["invoices"]}
    total_items = everything["counts"]["invoice_items"]["total"]
    assert len(expected) == INVOICES

    control(base, "rate_limit", {"calls_per_minute": PER_WINDOW, "window_seconds": WINDOW})
    budget = cliniko_budget(redis, calls_per_minute=PER_WINDOW, window_seconds=WINDOW)
    calls, waits = [], []

    def sleep(seconds):  # the client's sleep: real, recorded, bounded
        waits.append(seconds)
        time.sleep(min(seconds, 2.0))

    client = ClinikoClient(KEY, UA, api_url=base, budget=budget, on_call=calls.append, sleep=sleep,
                           connect_timeout=2, read_timeout=20, max_rate_wait=10)
    sandbox_calls_before, limited_before, _ = counters(base)
    # Another worker with the same key has just used this second's calls: the budget must hold ours back
    # (whatever this machine's speed), and every process sharing the key stays under Cliniko's limit.
    other_worker = cliniko_budget(redis, calls_per_minute=PER_WINDOW, window_seconds=WINDOW)
    for _ in range(PER_WINDOW):
        decision = other_worker.acquire(client.budget_key)
        assert decision.go
        other_worker.release(decision)

    started = time.monotonic()
    invoices = list(client.invoices_updated_since(EPOCH))
    walk_seconds, walk_calls = time.monotonic() - started, len(calls)
    ids = [i["id"] for i in invoices]

    started = time.monotonic()
    items = list(client.invoice_items(ids))
    items_seconds, item_calls = time.monotonic() - started, len(calls) - walk_calls

    sandbox_calls_after, limited_after, _ = counters(base)
    print(f"\nwalk: {len(ids)} invoices, {walk_calls} calls, {walk_seconds:.1f}s; items: {len(items)} items, "
          f"{item_calls} calls, {items_seconds:.1f}s; budget waits {len(waits)} ({sum(waits):.1f}s); "
          f"sandbox counted {sandbox_calls_after - sandbox_calls_before} calls, "
          f"{limited_after - limited_before} 429s")

    assert len(ids) == len(set(ids)) == INVOICES and set(ids) == expected, "every invoice exactly once"
    assert len(items) == len({i["id"] for i in items}) == total_items
    assert {i["invoice_id"] for i in items} <= expected
    assert walk_calls <= 110, f"walking {INVOICES} invoices cost {walk_calls} calls"
    assert item_calls <= 200, f"reading the items of {INVOICES} invoices cost {item_calls} calls"
    assert sandbox_calls_after - sandbox_calls_before == walk_calls + item_calls
    # The budget held calls back (it had to: the window was full when the walk began, and the client is
    # often faster than 20 a second) and Cliniko never said 429: at most 20 calls started in any second.
    assert waits, "the budget never had to hold a call back: the test did not exercise it"
    assert limited_after - limited_before == 0
    assert all(c.status == 200 for c in calls)
    starts = sorted(c.started_at for c in calls)
    assert all(starts[i + PER_WINDOW] - starts[i] >= WINDOW - 0.05 for i in range(len(starts) - PER_WINDOW))
    assert (walk_seconds + items_seconds) >= (walk_calls + item_calls) / PER_WINDOW - 2 * WINDOW


def test_walk_with_injected_faults_completes_exactly_once_or_raises_a_typed_error(sandbox):
    base, everything = sandbox
    expected = {i["id"] for i in everything["invoices"]}
    # A few 429s, JSON 500s and Rails HTML 500 pages, spread over the walk, at most 6 in all.
    faults = control(base, "faults", {"error_rate": 0.03, "error_status": 500, "rate_limit_rate": 0.03,
                                      "html_500_rate": 0.03, "count": 6, "seed": 7})
    assert faults["count"] == 6
    calls, waits = [], []
    client = ClinikoClient(KEY, UA, api_url=base, on_call=calls.append, connect_timeout=2, read_timeout=20,
                           max_rate_wait=10, sleep=lambda s: (waits.append(s), time.sleep(min(s, 1.0))))
    got, error = [], None
    try:
        for invoice in client.invoices_updated_since(EPOCH):
            got.append(invoice["id"])
    except ClientError as exc:
        error = exc
    _, _, after = counters(base)
    statuses = sorted({c.status for c in calls})
    print(f"\nfaults injected {after['injected']}; statuses {statuses}; {len(calls)} calls; "
          f"outcome: {'error ' + repr(error) if error else f'{len(got)} invoices'}")

    assert after["injected"] >= 3, "the faults did not fire: the test proves nothing"
    assert {500, 429} <= set(statuses)
    if error is None:
        assert len(got) == len(set(got)) == INVOICES and set(got) == expected
    else:
        assert isinstance(error, BadResponseError | ClientError) and error.transient
        assert error.message and "Cliniko" in error.message and error.status in (429, 500)
        assert len(got) < INVOICES


def test_persistent_html_500_mid_walk_raises_a_readable_typed_error_not_a_short_list(sandbox):
    base, _ = sandbox
    calls = []
    client = ClinikoClient(KEY, UA, api_url=base, on_call=calls.append, max_retries=2, connect_timeout=2,
                           read_timeout=20, sleep=lambda s: time.sleep(min(s, 0.05)))
    walk = client.invoices_updated_since(EPOCH)
    got = [next(walk)["id"] for _ in range(100)]  # the first page
    # From now on the next page answers with Rails' HTML 500 page more times than the client retries.
    control(base, "faults", {"html_500_rate": 1.0, "count": 3})
    with pytest.raises(ErrorPageError) as info:
        for invoice in walk:
            got.append(invoice["id"])
    error = info.value
    assert isinstance(error, BadResponseError) and error.status == 500 and error.transient
    assert "error page" in error.message and "<html" in error.detail.lower()
    assert error.call is not None and "page=2" in error.call.url
    assert len(got) == 100 and [c.status for c in calls[1:]] == [500, 500, 500]
